import { NestFactory } from '@nestjs/core';
import { bootstrapService, loadInternalToken, loadRestoreSettings } from '@sendense/config';
import { internalAuthHttp } from '@sendense/contracts';
import { RestoreServiceModule } from './app/restore-service.module';

/**
 * The restore-service is the only process that mounts restore points. It
 * serves an internal HTTP API on loopback that the gateway proxies (file
 * downloads stream through it).
 */
void bootstrapService({
  name: 'restore-service',
  loadSettings: () => ({ ...loadRestoreSettings(), token: loadInternalToken() }),
  create: async (s) => {
    const app = await NestFactory.create(RestoreServiceModule.forRoot(s));
    // Only callers with the internal token (the gateway) get past this; the health check stays open for probes.
    app.use(internalAuthHttp(s.token, ['/internal/health']));
    return app;
  },
  listen: (app, s) => app.listen(s.RESTORE_SERVICE_PORT, s.RESTORE_SERVICE_HOST),
  started: (s) => `restore-service on http://${s.RESTORE_SERVICE_HOST}:${s.RESTORE_SERVICE_PORT}`,
});
