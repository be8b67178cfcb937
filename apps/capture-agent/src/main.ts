import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { ConfigError, exitOnSignals, loadCaptureAgentSettings, loadInternalToken } from '@sendense/config';
import { internalAuthServerOptions } from '@sendense/contracts';
import { CaptureAgentModule } from './app/capture-agent.module';

/**
 * The Capture Agent runs next to vCenter: it snapshots VMs, reads changed
 * areas and copies disk data into the NBD targets the control plane gives it.
 * Request/reply over Nest's TCP transport; no HTTP server.
 */
async function main(): Promise<void> {
  let settings;
  let token: string;
  try {
    settings = loadCaptureAgentSettings();
    token = loadInternalToken();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`capture-agent: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(CaptureAgentModule.forRoot(settings), {
    transport: Transport.TCP,
    options: { host: settings.CAPTURE_AGENT_HOST, port: settings.CAPTURE_AGENT_PORT, ...internalAuthServerOptions(token) },
  });
  exitOnSignals('capture-agent', () => app.close());
  await app.listen();
  Logger.log(`capture-agent on tcp://${settings.CAPTURE_AGENT_HOST}:${settings.CAPTURE_AGENT_PORT} (CAPTURE_DISK_PARALLELISM=${settings.CAPTURE_DISK_PARALLELISM} disks of a VM at once)`, 'Bootstrap');
}

main().catch((err: unknown) => {
  process.stderr.write(`capture-agent failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
