/**
 * Resolves on the first SIGTERM or SIGINT; the caller then stops what it started. A second
 * signal while it does exits at once: Node's default action would kill the process without its
 * 'exit' handlers, and those are what stop Envoy (stack/envoy.ts).
 */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      process.once('SIGTERM', again);
      process.once('SIGINT', again);
      resolve(signal);
    };
    const again = (): void => process.exit(1);
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

/**
 * The grace period is a promise to whoever sent the signal: should anything keep the process
 * alive after it (a close that hangs, a child slow to die), leave anyway, `marginMs` later.
 * process.exit runs the 'exit' handlers, so Envoy is killed on the way out.
 */
export function exitWithin(graceMs: number, marginMs = 1000): void {
  setTimeout(() => process.exit(process.exitCode ?? 0), graceMs + marginMs).unref();
}
