/**
 * Runs (sync, export, import) and each source's last outcome. A run's end and its sources'
 * outcomes share one commit, and so do the module roots' `@v/list` digests that came with
 * them: written through modules.ts's ModuleListWrite inside this part's transaction, so a
 * list is never recorded as checked by a run that did not finish.
 */
import { FerryError } from '../errors/index.js';
import { compact, json, parseJson, type IndexDb } from './db.js';
import type { ModuleListWrite } from './modules.js';
import { pidAlive } from './pid.js';
import type { FinishRunInput, RunKind, RunRow, RunStatus, SourceState } from './types.js';

interface RunDbRow {
  id: number;
  kind: RunKind;
  status: RunStatus;
  started_at: string;
  finished_at: string | null;
  meta: string | null;
  summary: string | null;
  error: string | null;
}

function runRow(r: RunDbRow): RunRow {
  return {
    id: r.id,
    kind: r.kind,
    status: r.status,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    meta: parseJson(r.meta),
    summary: parseJson(r.summary),
    error: r.error,
  };
}

/** Sync, export and import runs, and the sources' outcomes. */
export class StoreRuns {
  constructor(
    private readonly db: IndexDb,
    private readonly lists: ModuleListWrite,
  ) {}

  /** Starts a run owned by this process and returns its id. */
  start(kind: RunKind, meta?: object): number {
    this.db.assertWritable('startRun');
    return this.db.run('startRun', () => {
      const r = this.db.sql
        .prepare(`INSERT INTO runs (kind, status, pid, started_at, meta) VALUES (?, 'running', ?, ?, ?)`)
        .run(kind, process.pid, this.db.iso(), json(meta));
      return Number(r.lastInsertRowid);
    });
  }

  /** Ends a running run; `r.sources` (and their module lists) are recorded in the same commit. */
  finish(id: number, r: FinishRunInput): void {
    this.db.assertWritable('finishRun');
    // The sources' outcomes share the run's commit: one fsync at the end of a pass, not two.
    const ended = this.db.write('finishRun', (): boolean => {
      for (const e of r.sources ?? []) {
        if (e.moduleList) this.lists.writeList(e.moduleList.module, e.moduleList.listDigest);
        this.putSourceResult(e.source, e.ok, e.error, e.at);
      }
      const res = this.db.sql
        .prepare(`UPDATE runs SET status = ?, finished_at = ?, summary = ?, error = ? WHERE id = ? AND status = 'running'`)
        .run(r.status, this.db.iso(), json(r.summary), r.error ?? null, id);
      return res.changes > 0;
    });
    if (!ended) throw new FerryError('INTERNAL', `run ${id} is not a running run in this store`, { op: 'finishRun' });
  }

  /** Marks as aborted the runs left 'running' by processes that no longer exist; returns how many. */
  abortOrphans(): number {
    return this.db.run('abortOrphanRuns', () => {
      const rows = this.db.sql.prepare(`SELECT id, pid FROM runs WHERE status = 'running'`).all() as Array<{ id: number; pid: number }>;
      const stmt = this.db.sql.prepare(`UPDATE runs SET status = 'aborted', finished_at = ?, error = ? WHERE id = ? AND status = 'running'`);
      let n = 0;
      for (const r of rows) {
        if (r.pid === process.pid || pidAlive(r.pid)) continue;
        n += stmt.run(this.db.iso(), `process ${r.pid} ended before the run finished`, r.id).changes;
      }
      return n;
    });
  }

  /** The latest runs, newest first. */
  last(limit = 20): RunRow[] {
    return this.db.run('lastRuns', () =>
      (this.db.sql.prepare('SELECT id, kind, status, started_at, finished_at, meta, summary, error FROM runs ORDER BY id DESC LIMIT ?').all(limit) as RunDbRow[]).map(
        runRow,
      ),
    );
  }

  /** Records one source's outcome (at `r.at`, default now). */
  recordSourceResult(source: string, r: { ok: boolean; error?: string; at?: string }): void {
    this.db.assertWritable('recordSourceResult');
    this.db.run('recordSourceResult', () => this.putSourceResult(source, r.ok, r.error, r.at));
  }

  private putSourceResult(source: string, ok: boolean, error: string | undefined, at: string | undefined): void {
    const when = at ?? this.db.iso();
    this.db.sql
      .prepare(
        `INSERT INTO source_states (source, last_run, last_ok_flag, last_ok, last_error, last_error_at)
         VALUES (@source, @when, @ok, CASE WHEN @ok THEN @when END, CASE WHEN @ok THEN NULL ELSE @error END, CASE WHEN @ok THEN NULL ELSE @when END)
         ON CONFLICT(source) DO UPDATE SET
           last_run = excluded.last_run, last_ok_flag = excluded.last_ok_flag,
           last_ok = COALESCE(excluded.last_ok, source_states.last_ok),
           last_error = CASE WHEN @ok THEN source_states.last_error ELSE excluded.last_error END,
           last_error_at = CASE WHEN @ok THEN source_states.last_error_at ELSE excluded.last_error_at END`,
      )
      .run({ source, when, ok: ok ? 1 : 0, error: error ?? 'failed' });
  }

  /** Every source's last outcome, by name. */
  sourceStates(): SourceState[] {
    return this.db.run('sourceStates', () => {
      const rows = this.db.sql
        .prepare('SELECT source, last_run AS lastRun, last_ok_flag, last_ok AS lastOk, last_error AS lastError, last_error_at AS lastErrorAt FROM source_states ORDER BY source')
        .all() as Array<Record<string, unknown>>;
      return rows.map((r) => {
        const { last_ok_flag, ...rest } = r;
        return compact<SourceState>({ ...rest, ok: last_ok_flag === 1 });
      });
    });
  }
}
