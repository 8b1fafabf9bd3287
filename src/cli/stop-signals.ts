/**
 * Signals of `helo server`, caught from the first moment the CLI runs
 * (bin/helo installs them before it loads anything else), so that a signal
 * during start-up (while modules load or the store opens) never meets
 * Node's default action, which ends the process:
 *
 * - SIGTERM / SIGINT are a request to stop: a clean exit 0.
 * - SIGHUP only asks for the TLS files to be read again. One that arrives
 *   before the server can reload is remembered and handed to it once it
 *   can (reading files already read just now is harmless).
 *
 * This module imports nothing, so that installing the handlers costs no
 * module loading.
 */

let stopRequested: Promise<NodeJS.Signals> | null = null;
let stopSignal: NodeJS.Signals | null = null;
let reload: (() => void) | null = null;
let isReloadPending = false;

function ignoreSignal(): void {}

function processOnHangup(): void {
  if (reload === null) isReloadPending = true;
  else reload();
}

/** Starts catching the stop signals (and SIGHUP); resolves with the first stop signal. */
export function watchStopSignals(): Promise<NodeJS.Signals> {
  stopRequested ??= new Promise<NodeJS.Signals>((resolve) => {
    // SIGHUP first: it is the one whose default action would end a server
    // that is meant to survive it.
    process.on('SIGHUP', processOnHangup);
    const processOnSignal = (signal: NodeJS.Signals): void => {
      // A signal sent to the whole process group reaches us once per signal
      // name; any repeat is ignored: the shutdown is already running.
      process.off('SIGTERM', processOnSignal);
      process.off('SIGINT', processOnSignal);
      process.on('SIGTERM', ignoreSignal);
      process.on('SIGINT', ignoreSignal);
      stopSignal = signal;
      resolve(signal);
    };
    process.on('SIGTERM', processOnSignal);
    process.on('SIGINT', processOnSignal);
  });
  return stopRequested;
}

/** The stop signal received so far, or null: start-up skips what it no longer needs. */
export function stopSignalReceived(): NodeJS.Signals | null {
  return stopSignal;
}

/**
 * Who answers SIGHUP from now on (the running server's TLS reload). A
 * SIGHUP that came earlier is answered now.
 */
export function onReloadSignal(handler: () => void): void {
  reload = handler;
  if (isReloadPending) {
    isReloadPending = false;
    handler();
  }
}
