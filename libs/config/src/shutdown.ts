/**
 * Stop cleanly on SIGTERM/SIGINT: close the app (Nest runs every
 * onModuleDestroy/onApplicationShutdown hook: queues, servers, mounts), then
 * exit 0. A hook that hangs cannot keep the process past `graceMs`.
 */
export interface SignalSource {
  once(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export function exitOnSignals(
  name: string,
  close: () => Promise<void>,
  {
    graceMs = 9000,
    log = (s: string) => process.stderr.write(`${s}\n`),
    signals = process,
    exit = (code: number) => process.exit(code),
  }: { graceMs?: number; log?: (s: string) => void; signals?: SignalSource; exit?: (code: number) => void } = {},
): void {
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    log(`${name}: ${signal} received, shutting down`);
    const timer = setTimeout(() => {
      log(`${name}: shutdown took longer than ${graceMs} ms, exiting anyway`);
      exit(1);
    }, graceMs);
    timer.unref();
    close().then(
      () => {
        log(`${name}: stopped`);
        exit(0);
      },
      (err: unknown) => {
        log(`${name}: error while stopping: ${err instanceof Error ? err.message : String(err)}`);
        exit(1);
      },
    );
  };
  signals.once('SIGTERM', handler);
  signals.once('SIGINT', handler);
}
