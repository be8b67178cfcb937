import { DocumentBuilder, type OpenAPIObject } from '@nestjs/swagger';

/** The OpenAPI document's header: served at /api/docs and written by scripts/api-generate.ts. */
export function openApiConfig(): Omit<OpenAPIObject, 'paths'> {
  return new DocumentBuilder()
    .setTitle('Sendense backup API')
    .setDescription(
      'VMware backups into QCOW2 chains and file-level restore. Every endpoint but /api/v1/health needs an API key ' +
        '(`Authorization: Bearer <key>` or `X-API-Key`); roles are admin, operator and viewer (`x-sendense-roles` on each operation). ' +
        'Request bodies are application/json only.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'sdk_... API key' }, 'bearer')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key' }, 'api-key')
    .build();
}
