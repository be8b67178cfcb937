import { createConnection } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NbdExporterClient, NbdExporterError } from '@sendense/contracts';
import { Daemon, findProcesses, run, waitFor } from '@sendense/process';
// A fresh, migrated database for the suite, dropped afterwards.
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import { makeTestEnv, nbdSize, qcow2, rawFile, type TestEnv } from './testing/test-env';

/**
 * The service as a process: main.ts run by node with tsx (one process, so
 * SIGKILL really kills the service), driven through NbdExporterClient.
 */
jest.setTimeout(90_000);

const workspace = resolve(__dirname, '../../..');
let env: TestEnv;
const TOKEN = 'exporter-e2e-internal-token';
let db: TestDatabase;

function serviceEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NO_COLOR: '1',
    TSX_TSCONFIG_PATH: join(workspace, 'apps/nbd-exporter/tsconfig.app.json'),
    NBD_EXPORTER_HOST: '127.0.0.1',
    NBD_EXPORTER_PORT: String(env.config.rpcPort),
    NBD_LISTEN_ADDRESS: '127.0.0.1',
    NBD_PORT_RANGE: `${env.config.portRange.first}-${env.config.portRange.last}`,
    NBD_STATE_DIR: env.stateDir,
    NBD_ALLOWED_ROOTS: env.root,
    NODE_NAME: 'e2e-node',
    NBD_RECORD_STORE: 'database',
    DATABASE_URL: db.url,
    SENDENSE_INTERNAL_TOKEN: TOKEN,
    NBD_EXPORTER_METRICS_PORT: '0',
    ...extra,
  };
}

function rpcReachable(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

async function startService(extra: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const d = await Daemon.start(process.execPath, ['--import', 'tsx', join(workspace, 'apps/nbd-exporter/src/main.ts')], {
    cwd: workspace,
    env: serviceEnv(extra),
  });
  await waitFor(async () => !d.running || (await rpcReachable(env.config.rpcPort)), { timeoutMs: 30_000, message: 'the exporter RPC port' });
  if (!d.running) throw d.exitError('nbd-exporter did not start');
  return d;
}

beforeAll(async () => {
  env = await makeTestEnv(40);
  db = await createTestDatabase();
});

afterAll(async () => {
  expect(await findProcesses(`${env.stateDir}/`)).toEqual([]);
  await db?.drop();
  await env.cleanup();
});

it('refuses a bad configuration, naming the variable', async () => {
  const d = await Daemon.start(process.execPath, ['--import', 'tsx', join(workspace, 'apps/nbd-exporter/src/main.ts')], {
    cwd: workspace,
    env: serviceEnv({ NBD_PORT_RANGE: '10999-10810' }),
  });
  const exit = await d.exited;
  expect(exit.code).toBe(78); // EX_CONFIG, as every service (bootstrapService)
  expect(d.stderr).toContain('NBD_PORT_RANGE="10999-10810" is invalid: first port 10999 is above last port 10810');
});

it('serves requests, survives SIGKILL without orphans, and stops cleanly on SIGTERM', async () => {
  let service = await startService();
  const client = NbdExporterClient.connect({ port: env.config.rpcPort, timeoutMs: 20_000, token: TOKEN });
  try {
    const image = await qcow2(join(env.root, 'e2e.qcow2'), '16M');
    const disk = await rawFile(join(env.root, 'e2e.raw'), '8M');
    const q = await client.createExport({
      vmContextId: 'e2e',
      diskId: 0,
      type: 'full',
      timestamp: '20260102T030405',
      kind: 'qcow2',
      filePath: image,
      writable: true,
      backupJobId: 'job-1',
    });
    const r = await client.createExport({ vmContextId: 'e2e', diskId: 1, type: 'migrate', timestamp: '20260102T030405', kind: 'raw', filePath: disk });
    expect(q).toMatchObject({
      name: 'backup-e2e-disk0-full-20260102T030405',
      server: 'qemu-nbd',
      virtualSize: 16 * 1024 * 1024,
      nodeName: 'e2e-node',
      backupJobId: 'job-1',
    });
    expect(await client.listExports({ backupJobId: 'job-1' })).toEqual([q]);
    expect((await client.listExports()).map((e) => e.name).sort()).toEqual([q.name, r.name].sort());
    expect(await client.getExport(r.name)).toEqual(r);
    expect(await client.getExport('backup-none')).toBeNull();

    const err = await client.createExport({ vmContextId: 'e2e', diskId: 2, type: 'full', kind: 'qcow2', filePath: '/etc/passwd' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdExporterError);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('is not under an allowed root') });
    const dup = await client
      .createExport({ vmContextId: 'e2e', diskId: 9, type: 'full', kind: 'qcow2', filePath: image, writable: true })
      .catch((e: unknown) => e);
    expect(dup).toMatchObject({ code: 'CONFLICT', message: `image ${image} is already exported writable as ${q.name}` });

    // Crash: the servers outlive the service (a copy in flight is not broken).
    service.child.kill('SIGKILL');
    await service.exited;
    expect(await nbdSize(q.uri)).toBe(16 * 1024 * 1024);
    expect((await db.prisma.nbdExport.findMany()).map((x) => x.state)).toEqual(['active', 'active']);
    // And the database loses track of the raw export (as if its create never got recorded).
    await db.prisma.nbdExport.delete({ where: { name: r.name } });

    service = await startService();
    // The recorded live export is adopted; the unrecorded server is stopped and its config deleted.
    expect((await client.listExports()).map((e) => e.name)).toEqual([q.name]);
    expect(await nbdSize(q.uri)).toBe(16 * 1024 * 1024);
    expect(await nbdSize(r.uri)).toBeNull();
    expect(await readdir(join(env.stateDir, 'conf.d'))).toEqual([]);
    const ours = await findProcesses(`${env.stateDir}/`);
    expect(ours.map((p) => p.argv[0])).toEqual(['qemu-nbd']);

    // Data written without an NBD flush is flushed by qemu-nbd when the service stops it.
    const source = await rawFile(join(env.dir, 'e2e-src.raw'), '16M');
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x3c 1M 2M', source]);
    await run('nbdcopy', [source, q.uri]);

    const t0 = Date.now();
    service.child.kill('SIGTERM');
    const exit = await service.exited;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(exit.signal === 'SIGTERM' || exit.code === 0).toBe(true);
    expect(await findProcesses(`${env.stateDir}/`)).toEqual([]);
    expect(await db.prisma.nbdExport.count()).toBe(0);
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', source, image]);
  } finally {
    await client.close();
    if (service.running) await service.stop(10_000);
  }
});
