/** Types of scripts/setup.mjs (a plain script: it must run before anything is installed). */

/** An npm script the set-up knows. */
export type SetupCommand = 'test' | 'demo' | 'bench';

/** A command missing from PATH and the Debian package that provides it. */
export interface MissingCommand {
  readonly command: string;
  readonly package: string;
}

/** What set-up a command needs. */
export interface SetupPlan {
  readonly missing: readonly MissingCommand[];
  readonly canInstall: boolean;
  readonly npmCi: string | undefined;
  readonly npmCiSkipped: string | undefined;
  readonly build: string | undefined;
}

/** Runs one step; returns its exit status. */
export type StepRunner = (file: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdio?: unknown }) => number;

/** The Debian package that provides each command the scripts run. */
export const PACKAGE_OF: Readonly<Record<string, string>>;
/** What each npm script needs. */
export const NEEDS: Readonly<Record<SetupCommand, { readonly commands: readonly string[]; readonly build: boolean }>>;
/** True when an executable named `cmd` is in one of PATH's folders. */
export function onPath(cmd: string, env?: NodeJS.ProcessEnv): boolean;
/** Why `npm ci` is needed, a reason it was not done (a linked node_modules), or undefined. */
export function npmCiReason(root: string): string | { readonly skip: string } | undefined;
/** Why dist/ must be rebuilt, or undefined. */
export function buildReason(root: string): string | undefined;
/** The set-up `command` needs in `root`. */
export function planSetup(opts: { root: string; command: SetupCommand; env?: NodeJS.ProcessEnv; isRoot: boolean }): SetupPlan;
/** The one line a user who cannot install packages reads. */
export function missingLine(command: SetupCommand, missing: readonly MissingCommand[], hasApt: boolean): string;
/** Sets up `root` for `command`; returns the exit status. */
export function setup(opts: {
  root: string;
  command: SetupCommand;
  env?: NodeJS.ProcessEnv;
  isRoot?: boolean;
  dryRun?: boolean;
  run?: StepRunner;
  write?: (s: string) => void;
  nodeVersion?: string;
}): number;
