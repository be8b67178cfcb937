/**
 * Stop cleanly on SIGTERM/SIGINT: close the app (Nest runs every
 * onModuleDestroy/onApplicationShutdown hook: queues, servers, mounts), then
 * exit 0. A hook that hangs cannot keep the process past `graceMs`.
 */
export function exitOnSignals(
  name: string,
  close: () => Promise<void>,
  { graceMs = 9000, log = (s: string) => process.stderr.write(`${s}\n`) }: { graceMs?: number; log?: (s: string) => void } = {},
): void {
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    log(`${name}: ${signal} received, shutting down`);
    const timer = setTimeout(() => {
      log(`${name}: shutdown took longer than ${graceMs} ms, exiting anyway`);
      process.exit(1);
    }, graceMs);
    timer.unref();
    close().then(
      () => {
        log(`${name}: stopped`);
        process.exit(0);
      },
      (err: unknown) => {
        log(`${name}: error while stopping: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}
