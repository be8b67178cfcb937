import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConfigError, exitOnSignals, loadRestoreSettings } from '@sendense/config';
import { RestoreServiceModule } from './app/restore-service.module';

/**
 * The restore-service is the only process that mounts restore points. It
 * serves an internal HTTP API on loopback that the gateway proxies (file
 * downloads stream through it).
 */
async function main(): Promise<void> {
  let settings;
  try {
    settings = loadRestoreSettings();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`restore-service: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  const app = await NestFactory.create(RestoreServiceModule.forRoot(settings));
  exitOnSignals('restore-service', () => app.close());
  await app.listen(settings.RESTORE_SERVICE_PORT, settings.RESTORE_SERVICE_HOST);
  Logger.log(`restore-service on http://${settings.RESTORE_SERVICE_HOST}:${settings.RESTORE_SERVICE_PORT}`, 'Bootstrap');
}

main().catch((err: unknown) => {
  process.stderr.write(`restore-service failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
