import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { bootstrapService, loadCaptureAgentSettings, loadInternalToken } from '@sendense/config';
import { internalAuthServerOptions } from '@sendense/contracts';
import { CaptureAgentModule } from './app/capture-agent.module';

/**
 * The Capture Agent runs next to vCenter: it snapshots VMs, reads changed
 * areas and copies disk data into the NBD targets the control plane gives it.
 * Request/reply over Nest's TCP transport; no HTTP server.
 */
void bootstrapService({
  name: 'capture-agent',
  loadSettings: () => ({ ...loadCaptureAgentSettings(), token: loadInternalToken() }),
  create: (s) =>
    NestFactory.createMicroservice<MicroserviceOptions>(CaptureAgentModule.forRoot(s), {
      transport: Transport.TCP,
      options: { host: s.CAPTURE_AGENT_HOST, port: s.CAPTURE_AGENT_PORT, ...internalAuthServerOptions(s.token) },
    }),
  listen: (app) => app.listen(),
  started: (s) =>
    `capture-agent on tcp://${s.CAPTURE_AGENT_HOST}:${s.CAPTURE_AGENT_PORT} (CAPTURE_DISK_PARALLELISM=${s.CAPTURE_DISK_PARALLELISM} disks of a VM at once)`,
});
