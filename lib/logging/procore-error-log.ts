/**
 * Errors already logged with their cause where they happened (e.g. a failed refresh, logged by the
 * refresher): answering them as a 5xx does not log them again, so one failure is one line however
 * many requests it answers.
 */
const logged = new WeakSet<object>();

/** Records that `error` has been logged with its cause. */
export function noteLogged(error: unknown): void {
  if (typeof error === 'object' && error !== null) logged.add(error);
}

/** Whether `error`, or the error it wraps (`cause`), has been logged already. */
export function wasLogged(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if (logged.has(error)) return true;
  const cause = (error as { cause?: unknown }).cause;
  return typeof cause === 'object' && cause !== null && logged.has(cause);
}
