import { NestFactory } from '@nestjs/core';
import { bootstrapService, loadWorkerSettings } from '@sendense/config';
import { WorkerModule } from './app/worker.module';

/** The backup worker: BullMQ consumers for this storage node; no HTTP server. */
void bootstrapService({
  name: 'backup-worker',
  loadSettings: () => loadWorkerSettings(),
  create: (s) => NestFactory.createApplicationContext(WorkerModule.forRoot(s), { bufferLogs: false }),
  started: (s) => `backup-worker for node ${s.NODE_NAME} started`,
});
