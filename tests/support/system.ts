import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, waitFor } from '@sendense/process';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import { ApiKeyRepository } from '@sendense/db';
import type { StandIn } from '@sendense/vsphere';

/**
 * The whole product on one host for a test: its own database, Redis queues
 * named after a unique node, temp repository and state directories, and each
 * service started from its build (`npm test` builds them first).
 */
export const ROOT = join(__dirname, '../..');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface System {
  db: TestDatabase;
  dir: string;
  repoDir: string;
  node: string;
  api: string;
  adminKey: string;
  daemons: Map<string, Daemon>;
  logs: Map<string, string[]>;
  env: NodeJS.ProcessEnv;
  /** Loopback /metrics ports of the services that serve them there. */
  metricsPorts: Record<'backup-worker' | 'capture-agent' | 'restore-service' | 'nbd-exporter', number>;
  restart(app: string): Promise<void>;
  stopApp(app: string): Promise<void>;
  startApp(app: string): Promise<void>;
  /** Another instance of an app (a second worker or gateway) with these settings on top; stopped with the system. */
  startExtra(name: string, app: string, env: NodeJS.ProcessEnv): Promise<Daemon>;
  stop(): Promise<void>;
  /** fetch against the gateway with the admin key. */
  call<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

const APPS = ['nbd-exporter', 'capture-agent', 'restore-service', 'backup-worker', 'api-gateway'] as const;

/** `env` overrides the services' settings (e.g. a private REDIS_URL for a test that restarts Redis). */
export async function startSystem(opts: { env?: Record<string, string> } = {}): Promise<System> {
  for (const app of APPS) {
    const main = join(ROOT, 'dist/apps', app, 'main.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: run "npx nx run-many -t build" (npm test does)`);
  }
  const db = await createTestDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'sendense-sys-'));
  const repoDir = join(dir, 'repo');
  const node = `sys-${process.pid}-${Date.now().toString(36)}`;
  const [gw, exp, cap, rs, wm, cm, rsm, em] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  // Below the ephemeral range (32768+) and away from the exporter's unit tests (21000-31000).
  const nbdFirst = 11000 + Math.floor(Math.random() * 40) * 200;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: db.url,
    NODE_NAME: node,
    // Its own queue keys: the system-wide policies and webhooks queues of parallel test systems on one Redis stay apart.
    QUEUE_PREFIX: node,
    LOG_LEVEL: 'log',
    SENDENSE_SECRET_KEY: 'test-secret',
    SENDENSE_INTERNAL_TOKEN: `internal-${randomBytes(16).toString('hex')}`,
    GATEWAY_PORT: String(gw),
    GATEWAY_HOST: '127.0.0.1',
    NBD_EXPORTER_URL: `tcp://127.0.0.1:${exp}`,
    NBD_EXPORTER_PORT: String(exp),
    NBD_STATE_DIR: join(dir, 'nbd'),
    NBD_ALLOWED_ROOTS: dir,
    NBD_PORT_RANGE: `${nbdFirst}-${nbdFirst + 200}`,
    CAPTURE_AGENT_URL: `tcp://127.0.0.1:${cap}`,
    CAPTURE_AGENT_PORT: String(cap),
    RESTORE_SERVICE_URL: `http://127.0.0.1:${rs}`,
    RESTORE_SERVICE_PORT: String(rs),
    RESTORE_MOUNT_ROOT: join(dir, 'mnt'),
    RESTORE_STATE_DIR: join(dir, 'restore'),
    RESTORE_ALLOWED_ROOTS: dir,
    REPOSITORY_ALLOWED_ROOTS: dir,
    WORKER_METRICS_PORT: String(wm),
    CAPTURE_AGENT_METRICS_PORT: String(cm),
    RESTORE_METRICS_PORT: String(rsm),
    NBD_EXPORTER_METRICS_PORT: String(em),
    ...opts.env,
  };
  const daemons = new Map<string, Daemon>();
  const logs = new Map<string, string[]>();
  const start = async (app: string, name = app, extraEnv: NodeJS.ProcessEnv = {}) => {
    const lines: string[] = [];
    logs.set(name, lines);
    const d = await Daemon.start('node', [join(ROOT, 'dist/apps', app, 'main.js')], { env: { ...env, ...extraEnv }, onLine: (l) => lines.push(l) });
    daemons.set(name, d);
    const ready: Record<string, () => boolean> = {
      'api-gateway': () => lines.some((l) => l.includes('API gateway on')),
      'capture-agent': () => lines.some((l) => l.includes('capture-agent on')),
      'backup-worker': () => lines.some((l) => l.includes('consuming')),
      'nbd-exporter': () => lines.some((l) => /listening|started|ready/i.test(l)),
      'restore-service': () => lines.some((l) => l.includes('restore-service on')),
    };
    await waitFor(() => !d.running || ready[app]!(), { timeoutMs: 120_000, intervalMs: 100, message: `${app} to start` });
    if (!d.running) throw d.exitError(`${app} exited during start`);
    return d;
  };
  try {
    for (const app of APPS) await start(app);
  } catch (err) {
    // Services already started must not outlive a failed start (they hold database connections).
    for (const app of [...APPS].reverse())
      await daemons
        .get(app)
        ?.stop(10_000)
        .catch(() => undefined);
    await db.drop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const adminKey = (await new ApiKeyRepository(db.prisma).create('system test', 'admin')).key;
  const api = `http://127.0.0.1:${gw}`;
  return {
    db,
    dir,
    repoDir,
    node,
    api,
    adminKey,
    daemons,
    logs,
    env,
    metricsPorts: { 'backup-worker': wm, 'capture-agent': cm, 'restore-service': rsm, 'nbd-exporter': em },
    async restart(app: string) {
      await daemons.get(app)?.stop(10_000);
      await start(app);
    },
    async stopApp(app: string) {
      await daemons.get(app)?.stop(10_000);
    },
    async startApp(app: string) {
      await start(app);
    },
    startExtra: (name: string, app: string, extraEnv: NodeJS.ProcessEnv) => start(app, name, extraEnv),
    async call<T>(method: string, path: string, body?: unknown) {
      const res = await fetch(`${api}${path}`, {
        method,
        headers: { authorization: `Bearer ${adminKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed as T };
    },
    async stop() {
      for (const [name, d] of daemons) if (!(APPS as readonly string[]).includes(name)) await d.stop(10_000);
      for (const app of [...APPS].reverse()) await daemons.get(app)?.stop(10_000);
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A second storage node on the same host, as an operator adds one: its own
 * nbd-exporter and backup-worker with another NODE_NAME (own state directory,
 * port and NBD port range), sharing the system's database, Redis and
 * Capture Agent. Its repositories are created with `storage_node: node`.
 */
export interface ExtraNode {
  node: string;
  repoDir: string;
  daemons: Map<string, Daemon>;
  logs: Map<string, string[]>;
  /** Start (or start again) one of its services. */
  start(app: 'nbd-exporter' | 'backup-worker'): Promise<void>;
  /** SIGKILL: a node that dies, no clean-up. */
  kill(app: 'nbd-exporter' | 'backup-worker'): Promise<void>;
  stop(): Promise<void>;
}

export async function startExtraNode(sys: System, node: string): Promise<ExtraNode> {
  const exp = await freePort();
  const nbdFirst = 11000 + Math.floor(Math.random() * 40) * 200;
  const env: NodeJS.ProcessEnv = {
    ...sys.env,
    NODE_NAME: node,
    NBD_EXPORTER_URL: `tcp://127.0.0.1:${exp}`,
    NBD_EXPORTER_PORT: String(exp),
    NBD_STATE_DIR: join(sys.dir, `nbd-${node}`),
    NBD_PORT_RANGE: `${nbdFirst}-${nbdFirst + 200}`,
    // The first node's services hold its metrics ports.
    NBD_EXPORTER_METRICS_PORT: '0',
    WORKER_METRICS_PORT: '0',
  };
  const daemons = new Map<string, Daemon>();
  const logs = new Map<string, string[]>();
  const ready: Record<string, (lines: string[]) => boolean> = {
    'backup-worker': (lines) => lines.some((l) => l.includes('consuming')),
    'nbd-exporter': (lines) => lines.some((l) => /listening|started|ready/i.test(l)),
  };
  const start = async (app: 'nbd-exporter' | 'backup-worker') => {
    const lines: string[] = [];
    logs.set(app, lines);
    const d = await Daemon.start('node', [join(ROOT, 'dist/apps', app, 'main.js')], { env, onLine: (l) => lines.push(l) });
    daemons.set(app, d);
    await waitFor(() => !d.running || ready[app]!(lines), { timeoutMs: 60_000, intervalMs: 100, message: `${app} of node ${node} to start` });
    if (!d.running) throw d.exitError(`${app} of node ${node} exited during start`);
  };
  const extra: ExtraNode = {
    node,
    repoDir: join(sys.dir, `repo-${node}`),
    daemons,
    logs,
    start,
    async kill(app) {
      const d = daemons.get(app);
      if (d?.pid) process.kill(d.pid, 'SIGKILL');
      await waitFor(() => !d?.running, { timeoutMs: 10_000, message: `${app} of node ${node} to die` });
    },
    async stop() {
      for (const app of ['backup-worker', 'nbd-exporter']) await daemons.get(app)?.stop(10_000);
    },
  };
  await start('nbd-exporter');
  await start('backup-worker');
  return extra;
}

/** Poll a backup job until it ends; returns its final status document. */
/**
 * Registers the VMware stand-in as the vCenter `standin` (its disks read
 * through the harness's NBD exports; `harnessUrl` puts a harness of the test's
 * in between, e.g. faults.ts HarnessNbdProxy) and imports `vmNames`; throws with the
 * gateway's answer when either is refused. Returns the vCenter id.
 */
export async function registerStandIn(sys: System, standIn: StandIn, vmNames: string[], opts: { harnessUrl?: string } = {}): Promise<string> {
  const vc = await sys.call<{ id: string }>('POST', '/api/v1/vcenters', {
    name: 'standin',
    url: standIn.url,
    username: standIn.username,
    password: standIn.password,
    insecure: true,
    disk_reader: { kind: 'standin-nbd', harnessUrl: opts.harnessUrl ?? standIn.harnessUrl },
  });
  if (vc.status !== 201) throw new Error(`vCenter registration answered ${vc.status}: ${JSON.stringify(vc.body)}`);
  const imp = await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: vmNames });
  if (imp.status !== 200) throw new Error(`import answered ${imp.status}: ${JSON.stringify(imp.body)}`);
  return vc.body.id;
}

export async function waitForJob<T extends { status: string }>(sys: System, runId: string, timeoutMs = 180_000, intervalMs = 300): Promise<T> {
  let last: T | undefined;
  await waitFor(
    async () => {
      const r = await sys.call<T>('GET', `/api/v1/jobs/${runId}`);
      last = r.body;
      return ['completed', 'failed', 'cancelled'].includes(r.body.status);
    },
    { timeoutMs, intervalMs, message: `job ${runId} to end` },
  );
  return last!;
}
