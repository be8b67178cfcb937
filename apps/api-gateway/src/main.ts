import { bootstrapService, loadGatewaySettings } from '@sendense/config';
import { createGateway } from './app/bootstrap';

/** The API gateway; its Nest application (Swagger, Bull Board, browser auth, TLS) is built in app/bootstrap.ts. */
void bootstrapService({
  name: 'api-gateway',
  loadSettings: () => loadGatewaySettings(),
  create: (s) => createGateway(s),
  listen: (app, s) => app.listen(s.GATEWAY_PORT, s.GATEWAY_HOST),
  started: (s) => `API gateway on ${s.GATEWAY_TLS_CERT ? 'https' : 'http'}://${s.GATEWAY_HOST}:${s.GATEWAY_PORT} (docs at /api/docs)`,
});
