/**
 * What happens when helo's own code throws while it serves one client: a
 * bug, not bad input (bad input gets a protocol reply or an HTTP status).
 * The decision, made once, here: that client's connection is closed, the
 * error is logged with its stack and counted (`helo_connection_faults_total`),
 * and every other connection and the process go on. Without this boundary
 * the exception would reach the event loop and end the process, and with it
 * every client's session (docs/RELIABILITY.md).
 *
 * Connection (connection.ts) runs its socket handlers, timers and store
 * callbacks through `contained()`; the HTTP port does the same for each
 * request and upgrade.
 */

/** `handler`, except that an exception it throws goes to `onFault` instead of the event loop. */
export function contained<T = void>(
  handler: (arg: T) => void,
  onFault: (error: unknown) => void,
): (arg: T) => void {
  return (arg: T): void => {
    try {
      handler(arg);
    } catch (error) {
      onFault(error);
    }
  };
}

/** The log fields for a fault: its message and where it happened. */
export function faultFields(error: unknown): { err: string; stack?: string } {
  if (error instanceof Error) return { err: error.message, stack: error.stack };
  return { err: String(error) };
}
