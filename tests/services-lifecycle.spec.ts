import { existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { Daemon, waitFor } from '@sendense/process';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';

/**
 * Every service starts from its build (`node dist/apps/<app>/main.js`) and
 * stops cleanly on SIGTERM within 10 s. `npm test` builds the apps first.
 */
const ROOT = join(__dirname, '..');

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
    s.connect(port, '127.0.0.1');
  });
}

const base = 19000 + (process.pid % 500) * 2;
const services: { app: string; env: Record<string, string>; ready: (lines: string[]) => Promise<boolean> }[] = [
  { app: 'api-gateway', env: { GATEWAY_PORT: String(base), GATEWAY_HOST: '127.0.0.1' }, ready: () => portOpen(base) },
  { app: 'capture-agent', env: { CAPTURE_AGENT_PORT: String(base + 1), CAPTURE_AGENT_METRICS_PORT: '0' }, ready: () => portOpen(base + 1) },
  {
    app: 'restore-service',
    env: { RESTORE_SERVICE_PORT: String(base + 2), RESTORE_STATE_DIR: `/tmp/sendense-lifecycle-${process.pid}`, RESTORE_METRICS_PORT: '0' },
    ready: () => portOpen(base + 2),
  },
  {
    app: 'backup-worker',
    env: { NODE_NAME: `lifecycle-${process.pid}`, WORKER_METRICS_PORT: '0' },
    ready: async (lines) => lines.some((l) => l.includes('backup-worker for node')),
  },
];

describe('services start from their build and stop on SIGTERM within 10 s', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  }, 60_000);
  afterAll(() => db?.drop());

  it.each(services.map((s) => [s.app, s] as const))(
    '%s',
    async (app, s) => {
      const main = join(ROOT, 'dist/apps', app, 'main.js');
      if (!existsSync(main)) throw new Error(`${main} is missing: run "npx nx run-many -t build" (npm test does)`);
      const lines: string[] = [];
      const d = await Daemon.start('node', [main], {
        env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'log', SENDENSE_INTERNAL_TOKEN: 'lifecycle-internal-token', ...s.env },
        onLine: (l) => lines.push(l),
      });
      try {
        await waitFor(() => !d.running || s.ready(lines), { timeoutMs: 60_000, intervalMs: 200, message: `${app} to be ready` });
        if (!d.running) throw d.exitError(`${app} exited during start`);
        const started = Date.now();
        d.child.kill('SIGTERM');
        const exit = await Promise.race([d.exited, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
        const took = Date.now() - started;
        expect({ app, exit, within10s: took < 10_000 }).toEqual({ app, exit: { code: 0, signal: null }, within10s: true });
      } finally {
        await d.stop(1000);
      }
    },
    90_000,
  );

  it('refuses a bad setting at start, naming the variable', async () => {
    const d = await Daemon.start('node', [join(ROOT, 'dist/apps/api-gateway/main.js')], {
      env: { ...process.env, GATEWAY_PORT: 'eighty' },
    });
    const exit = await d.exited;
    expect(exit.code).toBe(78);
    expect(d.stderr).toContain('GATEWAY_PORT="eighty" is invalid');
  }, 30_000);
});
