import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { AppModule } from './app/app.module';
import { ConfigError as SettingsError, loadInternalToken } from '@sendense/config';
import { internalAuthServerOptions } from '@sendense/contracts';
import { ConfigError, loadExporterConfig } from './app/config/exporter-config';

async function bootstrap(): Promise<void> {
  let config;
  let token: string;
  try {
    config = loadExporterConfig();
    token = loadInternalToken();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof SettingsError) {
      // One clear line naming the bad variable, no stack trace.
      process.stderr.write(`nbd-exporter: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(AppModule.forRoot(config), {
    transport: Transport.TCP,
    options: { host: config.rpcHost, port: config.rpcPort, ...internalAuthServerOptions(token) },
  });
  // SIGTERM/SIGINT run onApplicationShutdown, which stops every NBD server (they flush on SIGTERM).
  app.enableShutdownHooks();
  await app.listen();
  Logger.log(`nbd-exporter listening on ${config.rpcHost}:${config.rpcPort} (TCP), NBD on ${config.listenAddress}, node ${config.nodeName}`, 'Bootstrap');
}

bootstrap().catch((err) => {
  process.stderr.write(`nbd-exporter failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
