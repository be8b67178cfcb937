import { ValidationPipe, type INestApplication, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SwaggerModule } from '@nestjs/swagger';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { GatewaySettings } from '@sendense/config';
import { AppModule } from './app.module';
import { ApiKeyService } from './auth/api-key.service';
import { browserAuth } from './auth/browser-auth.middleware';
import { READ_ROLES, WRITE_ROLES } from './auth/roles.decorator';
import { BULL_BOARD_PATH, DOCS_PATH } from './common/api-paths';
import { QueueRegistry } from './queues/queue-registry.service';
import { openApiConfig } from './openapi-config';

const LEVELS: LogLevel[] = ['error', 'warn', 'log', 'debug', 'verbose'];

/** Build the gateway (used by main.ts and by the e2e tests). */
export async function createGateway(settings: GatewaySettings): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.forRoot(settings), {
    logger: LEVELS.slice(0, LEVELS.indexOf(settings.LOG_LEVEL) + 1),
  });
  app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }));

  const keys = app.get(ApiKeyService);

  const docConfig = openApiConfig();
  const document = SwaggerModule.createDocument(app, docConfig);
  app.use(`/${DOCS_PATH}`, browserAuth(keys, READ_ROLES));
  app.use(`/${DOCS_PATH}-json`, browserAuth(keys, READ_ROLES));
  SwaggerModule.setup(DOCS_PATH, app, document, { jsonDocumentUrl: `${DOCS_PATH}-json`, raw: ['json'] });

  // Bull Board: operators see and retry jobs; viewers may not act on queues.
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  const registry = app.get(QueueRegistry);
  const board = createBullBoard({ queues: [], serverAdapter });
  const refreshQueues = async () => {
    const queues = await registry.knownQueues(settings.NODE_NAME);
    board.replaceQueues(queues.map((q) => new BullMQAdapter(q)));
  };
  await refreshQueues();
  app.use(BULL_BOARD_PATH, browserAuth(keys, WRITE_ROLES), (_req: unknown, _res: unknown, next: () => void) => {
    // Storage nodes come and go with repositories; pick them up on each visit.
    refreshQueues().then(() => next(), () => next());
  }, serverAdapter.getRouter());
  return app;
}
