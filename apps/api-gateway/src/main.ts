import { Logger } from '@nestjs/common';
import { ConfigError, exitOnSignals, loadGatewaySettings } from '@sendense/config';
import { createGateway } from './app/bootstrap';

async function main(): Promise<void> {
  let settings;
  try {
    settings = loadGatewaySettings();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`api-gateway: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  const app = await createGateway(settings);
  exitOnSignals('api-gateway', () => app.close());
  await app.listen(settings.GATEWAY_PORT, settings.GATEWAY_HOST);
  Logger.log(`API gateway on http://${settings.GATEWAY_HOST}:${settings.GATEWAY_PORT} (docs at /api/docs)`, 'Bootstrap');
}

main().catch((err: unknown) => {
  process.stderr.write(`api-gateway failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
