import { Logger, type INestApplicationContext, type LogLevel } from '@nestjs/common';
import { ConfigError } from './env-schema';
import type { CommonSettings } from './settings';
import { exitOnSignals } from './shutdown';

/** Exit code of a refused configuration (EX_CONFIG of sysexits.h). */
export const EXIT_CONFIG = 78;

/** Nest log levels at or above LOG_LEVEL. */
export function logLevels(level: CommonSettings['LOG_LEVEL']): LogLevel[] {
  const order: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];
  return order.slice(0, order.indexOf(level) + 1);
}

export interface ServiceBoot<S extends CommonSettings, A extends INestApplicationContext> {
  /** The service's name in messages: api-gateway, backup-worker, ... */
  name: string;
  /** Read and validate the settings (a libs/config loader); a ConfigError stops the service with exit 78. */
  loadSettings: () => S;
  /** Create the Nest application, microservice or application context. */
  create: (settings: S) => Promise<A>;
  /** Start serving (HTTP or microservice listen); absent for a context without a server (the worker). */
  listen?: (app: A, settings: S) => Promise<unknown>;
  /** The line logged once the service runs. */
  started: (settings: S) => string;
}

/**
 * The one start sequence of every service: load the settings (a bad one
 * stops the service with exit 78 and one line naming the variable), set
 * the log level from LOG_LEVEL, create the app, stop cleanly on
 * SIGTERM/SIGINT (exitOnSignals: close, exit 0 within 10 s), listen, log.
 * Any other failure to start prints its stack and exits 1. Call it as the
 * whole of main.ts:
 *
 *   void bootstrapService({
 *     name: 'restore-service',
 *     loadSettings: loadRestoreSettings,
 *     create: (s) => NestFactory.create(RestoreServiceModule.forRoot(s)),
 *     listen: (app, s) => app.listen(s.RESTORE_SERVICE_PORT, s.RESTORE_SERVICE_HOST),
 *     started: (s) => `restore-service on http://${s.RESTORE_SERVICE_HOST}:${s.RESTORE_SERVICE_PORT}`,
 *   });
 */
export async function bootstrapService<S extends CommonSettings, A extends INestApplicationContext>(
  boot: ServiceBoot<S, A>,
  exit: (code: number) => void = (code) => process.exit(code),
): Promise<A | undefined> {
  let settings: S;
  try {
    settings = boot.loadSettings();
  } catch (err) {
    process.stderr.write(`${boot.name}: ${err instanceof Error ? err.message : String(err)}\n`);
    exit(err instanceof ConfigError ? EXIT_CONFIG : 1);
    return undefined;
  }
  try {
    Logger.overrideLogger(logLevels(settings.LOG_LEVEL));
    const app = await boot.create(settings);
    exitOnSignals(boot.name, () => app.close());
    if (boot.listen) await boot.listen(app, settings);
    Logger.log(boot.started(settings), 'Bootstrap');
    return app;
  } catch (err) {
    process.stderr.write(`${boot.name} failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    exit(1);
    return undefined;
  }
}
