/**
 * SIGTERM / SIGINT as a request to stop (README, signals): caught from the first
 * moment the CLI runs, so that a signal during start-up (while modules load
 * or the store opens) still ends in a clean exit 0 instead of a kill.
 */

let stopRequested: Promise<NodeJS.Signals> | null = null;

function ignoreSignal(): void {}

/** Starts catching the stop signals; resolves with the first one. */
export function watchStopSignals(): Promise<NodeJS.Signals> {
  stopRequested ??= new Promise<NodeJS.Signals>((resolve) => {
    const processOnSignal = (signal: NodeJS.Signals): void => {
      // A signal sent to the whole process group reaches us once per signal
      // name; any repeat is ignored: the shutdown is already running.
      process.off('SIGTERM', processOnSignal);
      process.off('SIGINT', processOnSignal);
      process.on('SIGTERM', ignoreSignal);
      process.on('SIGINT', ignoreSignal);
      resolve(signal);
    };
    process.on('SIGTERM', processOnSignal);
    process.on('SIGINT', processOnSignal);
  });
  return stopRequested;
}
