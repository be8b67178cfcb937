import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConfigError, exitOnSignals, loadInternalToken, loadRestoreSettings } from '@sendense/config';
import { internalAuthHttp } from '@sendense/contracts';
import { RestoreServiceModule } from './app/restore-service.module';

/**
 * The restore-service is the only process that mounts restore points. It
 * serves an internal HTTP API on loopback that the gateway proxies (file
 * downloads stream through it).
 */
async function main(): Promise<void> {
  let settings;
  let token: string;
  try {
    settings = loadRestoreSettings();
    token = loadInternalToken();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`restore-service: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  const app = await NestFactory.create(RestoreServiceModule.forRoot(settings));
  // Only callers with the internal token (the gateway) get past this; the health check stays open for probes.
  app.use(internalAuthHttp(token, ['/internal/health']));
  exitOnSignals('restore-service', () => app.close());
  await app.listen(settings.RESTORE_SERVICE_PORT, settings.RESTORE_SERVICE_HOST);
  Logger.log(`restore-service on http://${settings.RESTORE_SERVICE_HOST}:${settings.RESTORE_SERVICE_PORT}`, 'Bootstrap');
}

main().catch((err: unknown) => {
  process.stderr.write(`restore-service failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
