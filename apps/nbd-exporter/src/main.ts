import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { bootstrapService, loadInternalToken, loadNbdExporterSettings } from '@sendense/config';
import { internalAuthServerOptions } from '@sendense/contracts';
import { AppModule } from './app/app.module';
import { exporterConfigOf } from './app/config/exporter-config';

/**
 * The nbd-exporter: the only process that runs NBD servers. Request/reply over
 * Nest's TCP transport; SIGTERM/SIGINT close the app, whose shutdown hooks stop
 * every NBD server (they flush on SIGTERM).
 */
void bootstrapService({
  name: 'nbd-exporter',
  loadSettings: () => {
    const settings = loadNbdExporterSettings();
    return { ...settings, config: exporterConfigOf(settings), token: loadInternalToken() };
  },
  create: (s) =>
    NestFactory.createMicroservice<MicroserviceOptions>(AppModule.forRoot(s.config), {
      transport: Transport.TCP,
      options: { host: s.config.rpcHost, port: s.config.rpcPort, ...internalAuthServerOptions(s.token) },
    }),
  listen: (app) => app.listen(),
  started: (s) => `nbd-exporter listening on ${s.config.rpcHost}:${s.config.rpcPort} (TCP), NBD on ${s.config.listenAddress}, node ${s.config.nodeName}`,
});
