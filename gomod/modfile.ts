/**
 * A go.mod parser following golang.org/x/mod/modfile (read.go lexer, rule.go directives):
 * line and block forms, `//` comments, quoted strings, `// indirect`, retract intervals with
 * rationale, module deprecation. Parse mode is strict (main module) or lax (ParseLax: the go
 * command's mode for dependencies, which ignores all but module, go, require and retract).
 */
import { FerryError } from '../errors/index.js';
import { pathMajorMismatch, splitPathVersion } from './escape.js';
import { canonicalModuleVersion, compare } from './semver.js';

/** A required module; indirect when the line carries a `// indirect` comment. */
export interface GoModRequire {
  readonly path: string;
  readonly version: string;
  readonly indirect: boolean;
}

/** One side of a replace directive; version is absent for `path =>` and directory targets. */
export interface GoModModuleRef {
  readonly path: string;
  readonly version?: string;
}

/** A replace directive. `new.path` may be a directory (see isDirectoryPath). */
export interface GoModReplace {
  readonly old: GoModModuleRef;
  readonly new: GoModModuleRef;
}

/** An exclude directive. */
export interface GoModExclude {
  readonly path: string;
  readonly version: string;
}

/** A retract directive: a single version has low === high. */
export interface GoModRetract {
  readonly low: string;
  readonly high: string;
  readonly rationale: string;
}

/** A godebug key=value setting. */
export interface GoModGodebug {
  readonly key: string;
  readonly value: string;
}

/** A parsed go.mod file. */
export interface GoMod {
  readonly module: string;
  /** Text of a "Deprecated:" paragraph in the module directive's comments. */
  readonly deprecated?: string;
  readonly go?: string;
  readonly toolchain?: string;
  readonly godebug: GoModGodebug[];
  readonly require: GoModRequire[];
  readonly replace: GoModReplace[];
  readonly exclude: GoModExclude[];
  readonly retract: GoModRetract[];
  readonly tool: string[];
}

/** Options for parseGoMod. */
export interface ParseGoModOptions {
  /** File name used in error messages. @default "go.mod" */
  readonly file?: string;
  /**
   * Parse as the go command parses a dependency's go.mod (modfile.ParseLax): unknown and
   * main-module-only directives (replace, exclude, toolchain, godebug, tool) are ignored and
   * malformed retractions are skipped. @default false
   */
  readonly lax?: boolean;
}

// ---- lexer (modfile/read.go) ----

const EOF = 'EOF';
const EOLCOMMENT = 'EOLCOMMENT';
const COMMENT = 'COMMENT';
const IDENT = 'IDENT';
const STRING = 'STRING';
type Kind = typeof EOF | typeof EOLCOMMENT | typeof COMMENT | typeof IDENT | typeof STRING | '\n' | '(' | ')' | '[' | ']' | '{' | '}' | ',';

interface Token {
  kind: Kind;
  text: string;
  line: number;
  col: number;
}

interface Comment {
  text: string;
  line: number;
}

interface Line {
  tokens: string[];
  line: number;
  before: Comment[];
  suffix: Comment[];
}

interface Block {
  tokens: string[];
  line: number;
  before: Comment[];
  lines: Line[];
}

type Stmt = { line: Line } | { block: Block };

function isEOL(k: Kind): boolean {
  return k === EOF || k === EOLCOMMENT || k === '\n';
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

function isIdent(c: string): boolean {
  switch (c) {
    case ' ': case '(': case ')': case '[': case ']': case '{': case '}': case ',':
      return false;
    default:
      // unicode.IsPrint minus spaces: letters, marks, numbers, punctuation, symbols.
      return PRINTABLE.test(c);
  }
}

class Lexer {
  private readonly chars: string[];
  private i = 0;
  private line = 1;
  private col = 1;
  /** Suffix comments (after code on the same line), in order. */
  readonly suffixComments: Comment[] = [];

  constructor(text: string, private readonly fail: (line: number, col: number, msg: string) => never) {
    this.chars = Array.from(text);
  }

  private peek(off = 0): string {
    return this.chars[this.i + off] ?? '';
  }

  private read(): string {
    const c = this.chars[this.i++] ?? '';
    if (c === '\n') {
      this.line++;
      this.col = 1;
    } else {
      this.col++;
    }
    return c;
  }

  /** True when only spaces precede the current position on its line. */
  private onlySpaceBefore(): boolean {
    for (let j = this.i - 1; j >= 0; j--) {
      const c = this.chars[j]!;
      if (c === '\n') return true;
      if (!/\s/u.test(c)) return false;
    }
    return true;
  }

  next(): Token {
    for (;;) {
      if (this.i >= this.chars.length) break;
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r') {
        this.read();
        continue;
      }
      if (c === '/' && this.peek(1) === '/') {
        const line = this.line;
        const col = this.col;
        const whole = this.onlySpaceBefore();
        let text = '';
        while (this.i < this.chars.length && this.peek() !== '\n') text += this.read();
        if (this.i < this.chars.length) this.read(); // the newline belongs to the comment token
        if (text.endsWith('\r')) text = text.slice(0, -1);
        if (whole) return { kind: COMMENT, text, line, col };
        this.suffixComments.push({ text, line });
        return { kind: EOLCOMMENT, text, line, col };
      }
      if (c === '/' && this.peek(1) === '*') this.fail(this.line, this.col, 'mod files must use // comments (not /* */ comments)');
      break;
    }
    const line = this.line;
    const col = this.col;
    if (this.i >= this.chars.length) return { kind: EOF, text: '', line, col };
    const c = this.peek();
    switch (c) {
      case '\n': case '(': case ')': case '[': case ']': case '{': case '}': case ',':
        this.read();
        return { kind: c, text: c, line, col };
      case '"': case '`': {
        let text = this.read();
        for (;;) {
          if (this.i >= this.chars.length) this.fail(line, col, 'unexpected EOF in string');
          if (this.peek() === '\n') this.fail(this.line, this.col, 'unexpected newline in string');
          const d = this.read();
          text += d;
          if (d === c) break;
          if (d === '\\' && c !== '`') {
            if (this.i >= this.chars.length) this.fail(line, col, 'unexpected EOF in string');
            text += this.read();
          }
        }
        return { kind: STRING, text, line, col };
      }
    }
    if (!isIdent(c)) this.fail(line, col, `unexpected input character ${JSON.stringify(c)}`);
    let text = '';
    while (this.i < this.chars.length && isIdent(this.peek())) {
      if (this.peek() === '/' && this.peek(1) === '/') break;
      if (this.peek() === '/' && this.peek(1) === '*') this.fail(this.line, this.col, 'mod files must use // comments (not /* */ comments)');
      text += this.read();
    }
    return { kind: IDENT, text, line, col };
  }
}

// ---- syntax (modfile/read.go parseFile/parseStmt/parseLineBlock) ----

function parseSyntax(text: string, fail: (line: number, col: number, msg: string) => never): Stmt[] {
  const lx = new Lexer(text, fail);
  let tok = lx.next();
  const lex = (): Token => {
    const t = tok;
    tok = lx.next();
    return t;
  };
  const stmts: Stmt[] = [];
  const lines: Line[] = [];
  let pending: Comment[] = [];

  const parseLine = (first: Token): Line => {
    const l: Line = { tokens: [first.text], line: first.line, before: [], suffix: [] };
    for (;;) {
      const t = lex();
      if (isEOL(t.kind)) return l;
      l.tokens.push(t.text);
    }
  };

  for (;;) {
    const k = tok.kind;
    if (k === '\n') {
      lex();
      pending = [];
      continue;
    }
    if (k === COMMENT) {
      const t = lex();
      pending.push({ text: t.text, line: t.line });
      continue;
    }
    if (k === EOF) break;
    if (k === EOLCOMMENT) {
      lex();
      continue;
    }
    // A statement: tokens up to end of line, or "verb (" opening a block.
    const first = lex();
    const tokens = [first.text];
    let done = false;
    while (!done) {
      const t = lex();
      if (isEOL(t.kind)) {
        const l: Line = { tokens, line: first.line, before: pending, suffix: [] };
        stmts.push({ line: l });
        lines.push(l);
        done = true;
      } else if (t.kind === '(') {
        if (isEOL(tok.kind)) {
          if (tok.kind !== EOF) lex();
          const b: Block = { tokens, line: first.line, before: pending, lines: [] };
          let comments: Comment[] = [];
          for (;;) {
            const bk = tok.kind;
            if (bk === EOLCOMMENT) {
              lex();
            } else if (bk === '\n') {
              // Blank lines inside a block keep the comments above them attached (read.go).
              lex();
            } else if (bk === COMMENT) {
              const c = lex();
              comments.push({ text: c.text, line: c.line });
            } else if (bk === EOF) {
              fail(tok.line, tok.col, `syntax error (unterminated block started at ${first.line}:${first.col})`);
            } else if (bk === ')') {
              lex();
              if (!isEOL(tok.kind)) fail(tok.line, tok.col, 'syntax error (expected newline after closing paren)');
              lex();
              break;
            } else {
              const l = parseLine(lex());
              l.before = comments;
              comments = [];
              b.lines.push(l);
              lines.push(l);
            }
          }
          stmts.push({ block: b });
          done = true;
        } else if (tok.kind === ')') {
          const rp = lex();
          if (isEOL(tok.kind)) {
            lex();
            stmts.push({ block: { tokens, line: first.line, before: pending, lines: [] } });
            done = true;
          } else {
            tokens.push(t.text, rp.text);
          }
        } else {
          tokens.push(t.text);
        }
      } else {
        tokens.push(t.text);
      }
    }
    pending = [];
  }
  // Suffix comments belong to the single-line syntax they follow on the same line.
  const byLine = new Map<number, Line>();
  for (const l of lines) byLine.set(l.line, l);
  for (const c of lx.suffixComments) byLine.get(c.line)?.suffix.push(c);
  return stmts;
}

// ---- strings (Go strconv.Unquote for double-quoted strings) ----

function unquoteGo(s: string): string | undefined {
  if (s.length < 2 || s[0] !== '"' || s[s.length - 1] !== '"') return undefined;
  const body = s.slice(1, -1);
  const bytes: number[] = [];
  const pushStr = (str: string): void => {
    for (const b of Buffer.from(str, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < body.length; ) {
    const c = body[i]!;
    if (c === '"' || c === '\n') return undefined;
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      pushStr(ch);
      i += ch.length;
      continue;
    }
    const e = body[i + 1];
    i += 2;
    switch (e) {
      case 'a': bytes.push(7); break;
      case 'b': bytes.push(8); break;
      case 'f': bytes.push(12); break;
      case 'n': bytes.push(10); break;
      case 'r': bytes.push(13); break;
      case 't': bytes.push(9); break;
      case 'v': bytes.push(11); break;
      case '\\': bytes.push(92); break;
      case '"': bytes.push(34); break;
      case 'x': {
        const h = body.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(h)) return undefined;
        bytes.push(parseInt(h, 16));
        i += 2;
        break;
      }
      case 'u': case 'U': {
        const n = e === 'u' ? 4 : 8;
        const h = body.slice(i, i + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) return undefined;
        const cp = parseInt(h, 16);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
        pushStr(String.fromCodePoint(cp));
        i += n;
        break;
      }
      case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
        const o = body.slice(i - 1, i + 2);
        if (!/^[0-7]{3}$/.test(o)) return undefined;
        const v = parseInt(o, 8);
        if (v > 255) return undefined;
        bytes.push(v);
        i += 2;
        break;
      }
      default:
        return undefined;
    }
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(Uint8Array.from(bytes));
}

/** modfile parseString: unquotes "…"; other quote characters are reserved. */
function parseString(s: string): string {
  if (s.startsWith('"')) {
    const u = unquoteGo(s);
    if (u === undefined) throw new Error('invalid quoted string: invalid syntax');
    return u;
  }
  if (/["'`]/.test(s)) throw new Error('invalid quoted string: unquoted string cannot contain quote');
  return s;
}

/** modfile.IsDirectoryPath: relative (./, ../), rooted, or Windows-drive paths are directories. */
export function isDirectoryPath(ns: string): boolean {
  return ns === '.' || ns.startsWith('./') || ns.startsWith('.\\') ||
    ns === '..' || ns.startsWith('../') || ns.startsWith('..\\') ||
    ns.startsWith('/') || ns.startsWith('\\') ||
    (ns.length >= 2 && /^[A-Za-z]$/.test(ns[0]!) && ns[1] === ':');
}

const GO_VERSION_RE = /^([1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?([a-z]+[0-9]+)?$/;
const LAX_GO_VERSION_RE = /^v?(([1-9][0-9]*)\.(0|[1-9][0-9]*))([^0-9].*)$/;
const TOOLCHAIN_RE = /^default$|^go1($|\.)/;
const DEPRECATED_RE = /(?:^|\n\n)Deprecated: *([\s\S]*?)(?:$|\n\n)/;

function isIndirect(l: Line): boolean {
  const c = l.suffix[0];
  if (!c) return false;
  const f = c.text.replace(/^\/\//, '').trim().split(/\s+/).filter((x) => x !== '');
  return (f.length === 1 && f[0] === 'indirect') || (f.length > 1 && f[0] === 'indirect;');
}

function directiveComment(block: Block | undefined, l: Line): string {
  let groups = [l.before, l.suffix];
  if (block && l.before.length === 0 && l.suffix.length === 0) groups = [block.before, []];
  const out: string[] = [];
  for (const g of groups) for (const c of g) if (c.text.startsWith('//')) out.push(c.text.slice(2).trim());
  return out.join('\n');
}

/**
 * Parses go.mod text the way the go command does. Throws GOMOD_INVALID listing every error
 * with its line number ("go.mod:7: require x: …").
 */
export function parseGoMod(data: Buffer | string, opts: ParseGoModOptions = {}): GoMod {
  const file = opts.file ?? 'go.mod';
  const strict = opts.lax !== true;
  const text = typeof data === 'string' ? data : new TextDecoder('utf-8', { fatal: false }).decode(data);
  const fail = (line: number, col: number, msg: string): never => {
    throw new FerryError('GOMOD_INVALID', `${file}:${line}:${col}: ${msg}`, { file });
  };
  const stmts = parseSyntax(text, fail);

  const errors: string[] = [];
  let module: string | undefined;
  let deprecated: string | undefined;
  let go: string | undefined;
  let toolchain: string | undefined;
  const out = {
    godebug: [] as GoModGodebug[],
    require: [] as GoModRequire[],
    replace: [] as GoModReplace[],
    exclude: [] as GoModExclude[],
    retract: [] as GoModRetract[],
    tool: [] as string[],
  };
  const retractLines: Array<{ l: Line; args: string[]; rationale: string }> = [];

  const version = (verb: string, path: string, raw: string): string => {
    let t: string;
    try {
      t = parseString(raw);
    } catch (e) {
      throw new Error(`${verb} ${path}: version ${JSON.stringify(raw)} invalid: ${(e as Error).message}`);
    }
    const cv = canonicalModuleVersion(t);
    if (cv === '') throw new Error(`${verb} ${path}: version ${JSON.stringify(t)} invalid: must be of the form v1.2.3`);
    return cv;
  };
  const pathMajorOf = (path: string): string => {
    const s = splitPathVersion(path);
    if (!s.ok) throw new Error('invalid module path');
    return s.pathMajor;
  };

  const add = (block: Block | undefined, l: Line, verb: string, args: string[]): void => {
    if (!strict && !['go', 'module', 'retract', 'require'].includes(verb)) return;
    switch (verb) {
      default:
        throw new Error(`unknown directive: ${verb}`);
      case 'go': {
        if (go !== undefined) throw new Error('repeated go statement');
        if (args.length !== 1) throw new Error('go directive expects exactly one argument');
        let v = args[0]!;
        if (!GO_VERSION_RE.test(v)) {
          const m = strict ? null : LAX_GO_VERSION_RE.exec(v);
          if (!m) throw new Error(`invalid go version '${v}': must match format 1.23.0`);
          v = m[1]!;
        }
        go = v;
        return;
      }
      case 'toolchain':
        if (toolchain !== undefined) throw new Error('repeated toolchain statement');
        if (args.length !== 1) throw new Error('toolchain directive expects exactly one argument');
        if (!TOOLCHAIN_RE.test(args[0]!)) throw new Error(`invalid toolchain version '${args[0]}': must match format go1.23.0 or default`);
        toolchain = args[0]!;
        return;
      case 'module': {
        if (module !== undefined) throw new Error('repeated module statement');
        const m = DEPRECATED_RE.exec(directiveComment(block, l));
        if (m) deprecated = m[1];
        if (args.length !== 1) throw new Error('usage: module module/path');
        module = parseString(args[0]!);
        return;
      }
      case 'godebug': {
        if (args.length !== 1 || /["`',]/.test(args[0]!)) throw new Error('usage: godebug key=value');
        const eq = args[0]!.indexOf('=');
        if (eq < 0) throw new Error('usage: godebug key=value');
        out.godebug.push({ key: args[0]!.slice(0, eq), value: args[0]!.slice(eq + 1) });
        return;
      }
      case 'require':
      case 'exclude': {
        if (args.length !== 2) throw new Error(`usage: ${verb} module/path v1.2.3`);
        const path = parseString(args[0]!);
        const v = version(verb, path, args[1]!);
        const mismatch = pathMajorMismatch(v, pathMajorOf(path));
        if (mismatch !== undefined) throw new Error(`${verb} ${path}: version ${JSON.stringify(v)} invalid: ${mismatch}`);
        if (verb === 'require') out.require.push({ path, version: v, indirect: isIndirect(l) });
        else out.exclude.push({ path, version: v });
        return;
      }
      case 'replace': {
        const arrow = args.length >= 2 && args[1] === '=>' ? 1 : 2;
        if (args.length < arrow + 2 || args.length > arrow + 3 || args[arrow] !== '=>') {
          throw new Error(`usage: ${verb} module/path [v1.2.3] => other/module v1.4\n\t or ${verb} module/path [v1.2.3] => ../local/directory`);
        }
        const s = parseString(args[0]!);
        const pm = pathMajorOf(s);
        let v: string | undefined;
        if (arrow === 2) {
          v = version(verb, s, args[1]!);
          const mismatch = pathMajorMismatch(v, pm);
          if (mismatch !== undefined) throw new Error(`${verb} ${s}: version ${JSON.stringify(v)} invalid: ${mismatch}`);
        }
        const ns = parseString(args[arrow + 1]!);
        let nv: string | undefined;
        if (args.length === arrow + 2) {
          if (!isDirectoryPath(ns)) {
            if (ns.includes('@')) throw new Error("replacement module must match format 'path version', not 'path@version'");
            throw new Error('replacement module without version must be directory path (rooted or starting with . or ..)');
          }
          if (ns.includes('\\')) throw new Error('replacement directory appears to be Windows path (on a non-windows system)');
        } else {
          nv = version(verb, ns, args[arrow + 2]!);
          if (isDirectoryPath(ns)) throw new Error(`replacement module directory path ${JSON.stringify(ns)} cannot have version`);
        }
        out.replace.push({
          old: v === undefined ? { path: s } : { path: s, version: v },
          new: nv === undefined ? { path: ns } : { path: ns, version: nv },
        });
        return;
      }
      case 'retract':
        retractLines.push({ l, args, rationale: directiveComment(block, l) });
        return;
      case 'tool':
        if (args.length !== 1) throw new Error('tool directive expects exactly one argument');
        out.tool.push(parseString(args[0]!));
        return;
    }
  };

  const at = (l: { line: number }, e: unknown): void => {
    errors.push(`${file}:${l.line}: ${(e as Error).message}`);
  };
  for (const st of stmts) {
    if ('line' in st) {
      try {
        add(undefined, st.line, st.line.tokens[0]!, st.line.tokens.slice(1));
      } catch (e) {
        at(st.line, e);
      }
      continue;
    }
    const b = st.block;
    const known = ['module', 'godebug', 'require', 'exclude', 'replace', 'retract', 'tool'];
    if (b.tokens.length > 1 || !known.includes(b.tokens[0]!)) {
      if (strict) errors.push(`${file}:${b.line}: unknown block type: ${b.tokens.join(' ')}`);
      continue;
    }
    for (const l of b.lines) {
      try {
        add(b, l, b.tokens[0]!, l.tokens);
      } catch (e) {
        at(l, e);
      }
    }
  }

  // Retractions are versions of this module; intervals are kept as written (dontFixRetract).
  for (const { l, args, rationale } of retractLines) {
    try {
      const toks = [...args];
      let low: string;
      let high: string;
      if (toks.length === 0 || toks[0] === '(') throw new Error("retract: expected '[' or version");
      if (toks[0] !== '[') {
        low = high = retractVersion(toks.shift()!);
      } else {
        toks.shift();
        if (toks.length === 0) throw new Error("retract: expected version after '['");
        low = retractVersion(toks.shift()!);
        if (toks.shift() !== ',') throw new Error("retract: expected ',' after version");
        if (toks.length === 0) throw new Error("retract: expected version after ','");
        high = retractVersion(toks.shift()!);
        if (toks.shift() !== ']') throw new Error("retract: expected ']' after version");
      }
      if (toks.length > 0 && strict) throw new Error(`unexpected token after version: ${JSON.stringify(toks[0])}`);
      out.retract.push({ low, high, rationale });
    } catch (e) {
      if (strict) at(l, e);
    }
  }

  if (errors.length === 0 && module === undefined) errors.push(`${file}: missing module declaration`);
  if (errors.length > 0) {
    throw new FerryError('GOMOD_INVALID', errors.join('\n'), { file });
  }
  const result: GoMod = {
    module: module!,
    ...(deprecated !== undefined ? { deprecated } : {}),
    ...(go !== undefined ? { go } : {}),
    ...(toolchain !== undefined ? { toolchain } : {}),
    ...out,
  };
  return result;
}

// The go command keeps retract versions as written (dontFixRetract); they are still checked
// here so that isRetracted never compares against garbage.
function retractVersion(raw: string): string {
  const v = parseString(raw);
  if (canonicalModuleVersion(v) === '') throw new Error(`retract: version ${JSON.stringify(v)} invalid: must be of the form v1.2.3`);
  return v;
}

/** True when `version` falls in any retracted interval [low, high] (inclusive, Go precedence). */
export function isRetracted(version: string, retract: readonly GoModRetract[]): boolean {
  return retract.some((r) => compare(r.low, version) <= 0 && compare(version, r.high) <= 0);
}

/** The rationales of the retractions covering `version` (empty when none apply or none given). */
export function retractionRationale(version: string, retract: readonly GoModRetract[]): string[] {
  return retract.filter((r) => compare(r.low, version) <= 0 && compare(version, r.high) <= 0).map((r) => r.rationale);
}
