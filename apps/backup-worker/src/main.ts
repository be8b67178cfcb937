import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConfigError, exitOnSignals, loadWorkerSettings } from '@sendense/config';
import { WorkerModule } from './app/worker.module';

/** The backup worker: BullMQ consumers for this storage node; no HTTP server. */
async function main(): Promise<void> {
  let settings;
  try {
    settings = loadWorkerSettings();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`backup-worker: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(settings), { bufferLogs: false });
  exitOnSignals('backup-worker', () => app.close());
  Logger.log(`backup-worker for node ${settings.NODE_NAME} started`, 'Bootstrap');
}

main().catch((err: unknown) => {
  process.stderr.write(`backup-worker failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
