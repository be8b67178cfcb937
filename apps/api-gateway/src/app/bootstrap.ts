import { readFileSync } from 'node:fs';
import { Logger, ValidationPipe, type INestApplication, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { NextFunction, Request, Response } from 'express';
import helmet from 'helmet';
import { ConfigError, type GatewaySettings } from '@sendense/config';
import type { ApiRole } from '@sendense/db';
import { AppModule } from './app.module';
import { ApiKeyService } from './auth/api-key.service';
import { browserAuth, type BrowserRequest } from './auth/browser-auth.middleware';
import { RequestLimiter } from './auth/request-limiter.service';
import { ADMIN_ROLES, READ_ROLES, WRITE_ROLES } from './auth/roles.decorator';
import { BULL_BOARD_PATH, DOCS_PATH } from './common/api-paths';
import { jsonBody, originCheck, refuseRepeatedQuery, requireJsonBodies } from './common/validation';
import { QueueRegistry } from './queues/queue-registry.service';
import { openApiConfig } from './openapi-config';

const LEVELS: LogLevel[] = ['error', 'warn', 'log', 'debug', 'verbose'];

/** Certificate and key for HTTPS, when both are configured. */
export function gatewayTls(settings: GatewaySettings): { cert: Buffer; key: Buffer } | undefined {
  const { GATEWAY_TLS_CERT: certPath, GATEWAY_TLS_KEY: keyPath } = settings;
  if (!certPath && !keyPath) return undefined;
  if (!certPath || !keyPath) throw new ConfigError(['GATEWAY_TLS_CERT and GATEWAY_TLS_KEY must be set together (HTTPS needs both)']);
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError([`${name}=${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
    }
  };
  return { cert: read('GATEWAY_TLS_CERT', certPath), key: read('GATEWAY_TLS_KEY', keyPath) };
}

/** True for addresses only this host can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The gateway's base URL as clients should use it. */
export function gatewayUrl(settings: GatewaySettings): string {
  const scheme = settings.GATEWAY_TLS_CERT ? 'https' : 'http';
  const host = settings.GATEWAY_HOST.includes(':') ? `[${settings.GATEWAY_HOST}]` : settings.GATEWAY_HOST;
  return `${scheme}://${host}:${settings.GATEWAY_PORT}`;
}

/** Bull Board paths that nobody may use: jobs are added and edited through the REST API only. */
const BOARD_FORBIDDEN = [/^\/api\/queues\/[^/]+\/add\/?$/, /^\/api\/queues\/[^/]+\/[^/]+\/update-data\/?$/];

/** Drop `stacktrace` (server paths, code) from Bull Board answers. */
function withoutStackTraces(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutStackTraces);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = k === 'stacktrace' ? [] : withoutStackTraces(x);
    return out;
  }
  return v;
}

/** Bull Board: admins act (but never add or edit jobs), operators only look (without stack traces), viewers not at all. */
function boardRoles(req: Request): ApiRole[] {
  return req.method === 'GET' || req.method === 'HEAD' ? WRITE_ROLES : ADMIN_ROLES;
}

function boardGate(req: BrowserRequest, res: Response, next: NextFunction): void {
  if (BOARD_FORBIDDEN.some((re) => re.test(req.path))) {
    res.status(403).json({
      statusCode: 403,
      message: 'adding or editing jobs from Bull Board is disabled; start backups and maintenance through the REST API (/api/v1)',
      error: 'Forbidden',
    });
    return;
  }
  if (req.principal?.role !== 'admin') {
    const json = res.json.bind(res);
    res.json = (body: unknown) => json(withoutStackTraces(body));
  }
  next();
}

/** Build the gateway (used by main.ts and by the e2e tests). */
export async function createGateway(settings: GatewaySettings): Promise<INestApplication> {
  const tls = gatewayTls(settings);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(settings), {
    logger: LEVELS.slice(0, LEVELS.indexOf(settings.LOG_LEVEL) + 1),
    bodyParser: false, // JSON only, parsed below with a depth limit
    httpsOptions: tls,
  });
  if (!tls && !isLoopback(settings.GATEWAY_HOST)) {
    new Logger('Bootstrap').warn(
      `GATEWAY_HOST=${settings.GATEWAY_HOST} without TLS: API keys cross the network in clear text. ` +
        'Set GATEWAY_TLS_CERT and GATEWAY_TLS_KEY, or keep the default loopback address behind a TLS proxy (SECURITY.md).',
    );
  }
  app.disable('x-powered-by');
  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'", "'unsafe-inline'"],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          objectSrc: ["'none'"],
          frameAncestors: ["'none'"],
          baseUri: ["'self'"],
          formAction: ["'self'"],
          upgradeInsecureRequests: tls ? [] : null,
        },
      },
      strictTransportSecurity: tls ? { maxAge: 15_552_000 } : false,
    }),
  );
  app.use(refuseRepeatedQuery());
  app.use(originCheck(settings.GATEWAY_ALLOWED_ORIGINS.split(',')));
  app.use(requireJsonBodies());
  app.use(jsonBody());
  app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true, transform: true }));

  const keys = app.get(ApiKeyService);
  const limiter = app.get(RequestLimiter);

  const docConfig = openApiConfig();
  const document = SwaggerModule.createDocument(app, docConfig);
  app.use(`/${DOCS_PATH}`, browserAuth(keys, limiter, READ_ROLES));
  app.use(`/${DOCS_PATH}-json`, browserAuth(keys, limiter, READ_ROLES));
  SwaggerModule.setup(DOCS_PATH, app, document, { jsonDocumentUrl: `${DOCS_PATH}-json`, raw: ['json'] });

  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  const registry = app.get(QueueRegistry);
  const board = createBullBoard({ queues: [], serverAdapter });
  const refreshQueues = async () => {
    const queues = await registry.knownQueues(settings.NODE_NAME);
    board.replaceQueues(queues.map((q) => new BullMQAdapter(q)));
  };
  await refreshQueues();
  app.use(
    BULL_BOARD_PATH,
    browserAuth(keys, limiter, boardRoles),
    boardGate,
    (_req: unknown, _res: unknown, next: () => void) => {
      // Storage nodes come and go with repositories; pick them up on each visit.
      refreshQueues().then(
        () => next(),
        () => next(),
      );
    },
    serverAdapter.getRouter(),
  );
  return app;
}
