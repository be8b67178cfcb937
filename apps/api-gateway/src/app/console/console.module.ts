import { Logger, Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import express, { type NextFunction, type Request, type Response } from 'express';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { WhoAmIController } from './whoami.controller';

/** Paths the console never answers: the API, Swagger and Bull Board keep their own 404s. */
const NOT_CONSOLE = /^\/(api|admin|metrics)(\/|$)/;

/**
 * Where the built console (`dist/apps/console`, `npx nx build console`) is:
 * next to the gateway's own build, or under the working directory.
 */
export function consoleDir(): string | null {
  const candidates = [process.argv[1] ? join(dirname(process.argv[1]), '../console') : undefined, join(process.cwd(), 'dist/apps/console')];
  return candidates.find((d): d is string => !!d && existsSync(join(d, 'index.html'))) ?? null;
}

/**
 * The web console at `/`: its static build, index.html never cached (a new
 * build is picked up at once), hashed assets cached for a year; any other
 * page path gets index.html (client-side routes). Registered after the API
 * routes, so it only sees what they did not answer.
 */
@Module({ controllers: [WhoAmIController] })
export class ConsoleModule implements OnModuleInit {
  /** Tests point this at a build of their own; otherwise consoleDir() finds it. */
  static directory: string | undefined;
  private readonly log = new Logger('Console');
  constructor(private readonly adapter: HttpAdapterHost) {}

  onModuleInit(): void {
    const dir = ConsoleModule.directory ?? consoleDir();
    const app = this.adapter.httpAdapter;
    if (!dir) {
      this.log.warn('the web console is not built (npx nx build console); / answers 503');
      app.use((req: Request, res: Response, next: NextFunction) => {
        if (req.method !== 'GET' || NOT_CONSOLE.test(req.path)) return next();
        res.status(503).type('text/plain').send('The Sendense console is not built on this host: run "npx nx build console".\n');
      });
      return;
    }
    const indexHtml = join(dir, 'index.html');
    const statics = express.static(dir, {
      index: false,
      fallthrough: true,
      setHeaders: (res, path) => {
        if (path.endsWith('.html')) res.setHeader('Cache-Control', 'no-cache');
        else if (path.includes('/assets/')) res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
        else res.setHeader('Cache-Control', 'public, max-age=3600');
      },
    });
    app.use((req: Request, res: Response, next: NextFunction) => {
      if ((req.method !== 'GET' && req.method !== 'HEAD') || NOT_CONSOLE.test(req.path)) return next();
      statics(req, res, () => {
        // A missing asset is a 404, not the page.
        if (req.path.startsWith('/assets/')) return next();
        res.setHeader('Cache-Control', 'no-cache');
        res.sendFile(indexHtml);
      });
    });
    this.log.log(`web console from ${dir}`);
  }
}
