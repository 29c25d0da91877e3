/** A one-line progress display on a terminal (images, blobs, bytes, rate). */
import type { SyncEvent } from '../sync/index.js';

/** Formats a byte count for people (1.5 GiB). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Tracks sync events and redraws a status line on stderr when it is a terminal. */
export class Progress {
  private imagesTotal = 0;
  private imagesDone = 0;
  private blobs = 0;
  private bytes = 0;
  private modules = 0;
  private readonly started = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly enabled: boolean;

  constructor(enabled = process.stderr.isTTY === true) {
    this.enabled = enabled;
    if (enabled) this.timer = setInterval(() => this.draw(), 250);
  }

  /** Feeds one engine event. */
  readonly onEvent = (e: SyncEvent): void => {
    if (e.type === 'image-start') this.imagesTotal++;
    else if (e.type === 'image-done') this.imagesDone++;
    else if (e.type === 'blob-done') this.blobs++;
    else if (e.type === 'blob-progress') this.bytes += e.bytes;
    else if (e.type === 'module-done') this.modules++;
  };

  private draw(): void {
    const secs = Math.max((Date.now() - this.started) / 1000, 0.001);
    const line = `images ${this.imagesDone}/${this.imagesTotal} · modules ${this.modules} · blobs ${this.blobs} · ${formatBytes(this.bytes)} · ${formatBytes(this.bytes / secs)}/s`;
    process.stderr.write(`\r\x1b[2K${line}`);
  }

  /** Stops redrawing and clears the line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.enabled) process.stderr.write('\r\x1b[2K');
  }
}

/** A one-line byte counter on a terminal (export, verify): done of total, percentage, rate. */
export class ByteProgress {
  private readonly started = Date.now();
  private last = 0;

  constructor(
    private readonly label: string,
    private readonly enabled = process.stderr.isTTY === true,
  ) {}

  /** Reports bytes done (of total, when known); redraws at most four times a second. */
  update(done: number, total?: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 250 && (total === undefined || done < total)) return;
    this.last = now;
    const secs = Math.max((now - this.started) / 1000, 0.001);
    const pct = total ? ` (${Math.floor((done / total) * 100)}%)` : '';
    const of = total !== undefined ? ` of ${formatBytes(total)}` : '';
    process.stderr.write(`\r\x1b[2K${this.label} ${formatBytes(done)}${of}${pct} · ${formatBytes(done / secs)}/s`);
  }

  /** Clears the line. */
  stop(): void {
    if (this.enabled) process.stderr.write('\r\x1b[2K');
  }
}
