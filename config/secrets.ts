/**
 * Secret references (`env:NAME`, `file:PATH`). Credentials `docker login` stored are looked up
 * in registry/credentials.ts: that runs helper processes, which config/ never does.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { FerryError } from '../errors/index.js';

/**
 * Resolves `env:NAME` or `file:PATH` (relative to `baseDir`); any other string is returned as
 * it is (usernames may be literal). The value itself never appears in an error.
 */
export function resolveSecret(ref: string, where: string, baseDir = process.cwd()): string {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    const v = process.env[name];
    if (v === undefined || v === '') {
      throw new FerryError('SECRET_UNRESOLVED', `${where}: environment variable ${name} is not set`);
    }
    return v;
  }
  if (ref.startsWith('file:')) {
    const p = ref.slice(5);
    const path = isAbsolute(p) ? p : resolve(baseDir, p);
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new FerryError('SECRET_UNRESOLVED', `${where}: cannot read secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  return ref;
}
