/** Daemon defaults the CLI shows in its help; kept apart so `--help` loads none of the daemon. */

/** Default grace period for in-flight transfers at shutdown. */
export const DEFAULT_GRACE_MS = 30_000;
