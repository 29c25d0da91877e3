/** Promise helpers for work that must not outlive its caller. */

/** Waits for every promise, then throws the first failure: no write outlives the work that started it. */
export async function allSettledOrThrow(ps: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const settled = await Promise.allSettled(ps);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
