import { join } from 'node:path';
import { readFile, readdir, rm } from 'node:fs/promises';
import { CommandError, Daemon, findProcesses, isAlive, run, waitFor } from '@sendense/process';
import { makeTestEnv, nbdSize, qcow2, rawFile, type TestEnv } from '../../testing/test-env';
import { ExporterError } from '../exporter-error';
import { MemoryExportRecordStore } from '../store/memory-export-record-store';
import { NbdExportManager } from './export-manager';

/** Acceptance tests against real qemu-nbd and nbd-server processes. */
jest.setTimeout(60_000);

let env: TestEnv;
let manager: NbdExportManager;
let seq = 0;
/** Unique timestamps so every test gets its own export names. */
const ts = () => `20260101T${String(100000 + seq++).padStart(6, '0')}`;

beforeAll(async () => {
  env = await makeTestEnv(80);
  manager = new NbdExportManager(env.config, new MemoryExportRecordStore());
  await manager.start();
});

afterAll(async () => {
  await manager?.shutdown();
  // Nothing of ours may survive the suite.
  expect(await findProcesses(`${env.stateDir}/`)).toEqual([]);
  await env.cleanup();
});

async function expectError(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ExporterError);
  expect((err as ExporterError).code).toBe(code);
  expect((err as ExporterError).message).toMatch(message);
}

describe('QCOW2 export through qemu-nbd', () => {
  it('writes through NBD land in the file; the removed export is unreachable', async () => {
    const image = await qcow2(join(env.root, 'full.qcow2'), '64M');
    const source = await rawFile(join(env.dir, 'source.raw'), '64M');
    // Some data, some holes, a tail: a realistic sparse disk.
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xa5 0 3M', '-c', 'write -P 0x5a 40M 1M', '-c', 'write -P 0x11 63M 1M', source]);

    const exp = await manager.create({ vmContextId: 'ctx-1', diskId: 0, type: 'full', timestamp: ts(), kind: 'qcow2', filePath: image, writable: true });
    expect(exp).toMatchObject({ server: 'qemu-nbd', kind: 'qcow2', writable: true, virtualSize: 64 * 1024 * 1024, state: 'active' });
    expect(exp.name).toMatch(/^backup-ctx-1-disk0-full-2026/);
    expect(await nbdSize(exp.uri)).toBe(64 * 1024 * 1024);

    await run('nbdcopy', ['--flush', source, exp.uri]);
    expect(await manager.remove(exp.name)).toEqual({ name: exp.name, removed: true });

    // Identical contents (exit 0), checked on the file after the server is gone.
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', source, image]);
    await run('qemu-img', ['check', '-q', image]);
    expect(await nbdSize(exp.uri)).toBeNull();
    expect(await manager.get(exp.name)).toBeNull();
    expect(await manager.remove(exp.name)).toEqual({ name: exp.name, removed: false });
  });

  it('a read-only export refuses writes', async () => {
    const image = await qcow2(join(env.root, 'ro.qcow2'), '8M');
    const exp = await manager.create({ vmContextId: 'ctx-ro', diskId: 1, type: 'restore', timestamp: ts(), kind: 'qcow2', filePath: image });
    expect(exp.writable).toBe(false);
    await expect(run('qemu-io', ['-f', 'raw', '-c', 'write 0 64k', exp.uri])).rejects.toThrow(CommandError);
    await manager.remove(exp.name);
  });

  it('exports an incremental with its backing chain (reads fall through to the full)', async () => {
    const full = await qcow2(join(env.root, 'chain-full.qcow2'), '8M');
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x77 0 1M', full]);
    const incr = await qcow2(join(env.root, 'chain-incr.qcow2'), '8M', full);
    const exp = await manager.create({ vmContextId: 'ctx-ch', diskId: 0, type: 'incr', timestamp: ts(), kind: 'qcow2', filePath: incr, writable: true });
    await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x77 0 1M', '-c', 'write -z 512k 64k', exp.uri]);
    await manager.remove(exp.name);
    // The zero write landed in the incremental (it is not a hole falling through to 0x77).
    await run('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0 512k 64k', '-c', 'read -P 0x77 0 512k', incr]);
  });

  it('a second writable export of one image gets a clear error', async () => {
    const image = await qcow2(join(env.root, 'two-writers.qcow2'), '8M');
    const first = await manager.create({ vmContextId: 'ctx-2w', diskId: 0, type: 'full', timestamp: ts(), kind: 'qcow2', filePath: image, writable: true });
    await expectError(
      manager.create({ vmContextId: 'ctx-2w', diskId: 0, type: 'full', timestamp: ts(), kind: 'qcow2', filePath: image, writable: true }),
      'CONFLICT',
      new RegExp(`image ${image} is already exported writable as ${first.name}`),
    );
    await expectError(
      manager.create({ vmContextId: 'ctx-2w', diskId: 0, type: 'restore', timestamp: ts(), kind: 'qcow2', filePath: image }),
      'CONFLICT',
      /already exported writable/,
    );
    await manager.remove(first.name);
  });

  it("an image another process holds open gets qemu's lock error, explained", async () => {
    const image = await qcow2(join(env.root, 'locked.qcow2'), '8M');
    // Another program writing the image: qemu image locking must stop a second writer.
    const holder = await Daemon.start('qemu-nbd', ['-f', 'qcow2', '-k', join(env.dir, 'holder.sock'), '--', image]);
    try {
      await new Promise((r) => setTimeout(r, 300));
      await expectError(
        manager.create({ vmContextId: 'ctx-lock', diskId: 0, type: 'full', timestamp: ts(), kind: 'qcow2', filePath: image, writable: true }),
        'CONFLICT',
        /is locked by another process/,
      );
    } finally {
      await holder.stop();
    }
    expect(await manager.list()).toEqual(expect.not.arrayContaining([expect.objectContaining({ filePath: image })]));
  });
});

describe('a server that dies', () => {
  it('is noticed: its export disappears and the image can be exported again', async () => {
    const image = await qcow2(join(env.root, 'dies.qcow2'), '4M');
    const exp = await manager.create({ vmContextId: 'ctx-die', diskId: 0, type: 'full', timestamp: ts(), kind: 'qcow2', filePath: image, writable: true });
    const [proc] = await findProcesses(`${env.stateDir}/run/${exp.name}.pid`);
    process.kill(proc.pid, 'SIGKILL');
    await waitFor(async () => !(await isAlive(proc.pid)));
    const again = await manager.create({ vmContextId: 'ctx-die', diskId: 0, type: 'full', timestamp: ts(), kind: 'qcow2', filePath: image, writable: true });
    expect(await manager.get(exp.name)).toBeNull();
    expect((await manager.list()).map((e) => e.name)).toContain(again.name);
    expect(await nbdSize(again.uri)).toBe(4 * 1024 * 1024);
    await manager.remove(again.name);
  });
});

describe('raw export through nbd-server', () => {
  it('keeps serving a live connection while QCOW2 and raw exports come and go', async () => {
    const disk = await rawFile(join(env.root, 'migrate.raw'), '32M');
    const raw = await manager.create({ vmContextId: 'ctx-raw', diskId: 0, type: 'migrate', timestamp: ts(), kind: 'raw', filePath: disk, writable: true });
    expect(raw).toMatchObject({ server: 'nbd-server', kind: 'raw', virtualSize: 32 * 1024 * 1024 });
    const conf = await readFile(join(env.stateDir, 'conf.d', `${raw.name}.conf`), 'utf8');
    expect(conf).toContain(`exportname = ${disk}`);

    // One connection, held open for ~8 s (4 MiB/s) of rate-limited writes (nbdkit rate filter as source).
    const copy = run(
      'nbdcopy',
      ['--flush', '--connections=1', '--', '[', 'nbdkit', '--exit-with-parent', '--filter=rate', 'pattern', 'size=32M', 'rate=32M', ']', raw.uri],
      { timeoutMs: 30_000 },
    );
    let copyDone: string | null = null;
    void copy.then(
      () => (copyDone = 'finished'),
      (e: Error) => (copyDone = `failed: ${e.message}`),
    );

    // Churn until the copy ends; count the rounds that ran entirely while it was busy.
    let churned = 0;
    let roundsDuringCopy = 0;
    while (churned < 3 && copyDone === null) {
      const q = await qcow2(join(env.root, `churn-${churned}.qcow2`), '4M');
      const r = await rawFile(join(env.root, `churn-${churned}.raw`), '4M');
      const qe = await manager.create({ vmContextId: 'ctx-churn', diskId: churned, type: 'full', timestamp: ts(), kind: 'qcow2', filePath: q, writable: true });
      const re = await manager.create({ vmContextId: 'ctx-churn', diskId: churned, type: 'migrate', timestamp: ts(), kind: 'raw', filePath: r });
      expect(await nbdSize(qe.uri)).toBe(4 * 1024 * 1024);
      await manager.remove(qe.name);
      await manager.remove(re.name);
      expect(await nbdSize(re.uri)).toBeNull();
      churned++;
      if (copyDone === null) roundsDuringCopy++;
    }
    // Servers came and went while the connection was busy.
    expect(roundsDuringCopy).toBeGreaterThanOrEqual(2);
    const result = await copy; // rejects if the connection was dropped
    expect(result.exitCode).toBe(0);

    // The data the live connection wrote is all there.
    const expected = join(env.dir, 'pattern.raw');
    await run('nbdcopy', ['--', '[', 'nbdkit', '--exit-with-parent', 'pattern', 'size=32M', ']', expected]);
    await manager.remove(raw.name);
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', expected, disk]);
    expect(await readdir(join(env.stateDir, 'conf.d'))).toEqual([]);
  });

  it('a removed nbd-server export stops serving, also on connections already open', async () => {
    const disk = await rawFile(join(env.root, 'cut.raw'), '16M');
    const exp = await manager.create({ vmContextId: 'ctx-cut', diskId: 0, type: 'migrate', timestamp: ts(), kind: 'raw', filePath: disk, writable: true });
    const copy = run(
      'nbdcopy',
      ['--connections=1', '--', '[', 'nbdkit', '--exit-with-parent', '--filter=rate', 'pattern', 'size=16M', 'rate=16M', ']', exp.uri],
      { timeoutMs: 30_000 },
    );
    await new Promise((r) => setTimeout(r, 700));
    await manager.remove(exp.name);
    await expect(copy).rejects.toThrow(CommandError);
    expect(await nbdSize(exp.uri)).toBeNull();
  });
});

describe('block device export through nbd-server', () => {
  it('serves a block device (a loop device here) read-only, under an allowed /dev root', async () => {
    const backing = await rawFile(join(env.dir, 'loop-backing.raw'), '6M');
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x42 0 1M', backing]);
    const dev = (await run('losetup', ['-f', '--show', backing])).stdout.trim();
    const m = new NbdExportManager({ ...env.config, allowedRoots: [env.root, '/dev'] }, new MemoryExportRecordStore());
    try {
      const exp = await m.create({ vmContextId: 'ctx-blk', diskId: 0, type: 'migrate', timestamp: ts(), kind: 'block', filePath: dev });
      expect(exp).toMatchObject({ kind: 'block', server: 'nbd-server', virtualSize: 6 * 1024 * 1024, writable: false });
      await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0x42 0 1M', exp.uri]);
      await expect(run('qemu-io', ['-f', 'raw', '-c', 'write 0 64k', exp.uri])).rejects.toThrow(CommandError);
      await expectError(
        m.create({ vmContextId: 'ctx-blk', diskId: 1, type: 'migrate', timestamp: ts(), kind: 'raw', filePath: dev }),
        'INVALID_ARGUMENT',
        /is not a regular file, but kind is "raw"/,
      );
      await m.remove(exp.name);
      expect(await nbdSize(exp.uri)).toBeNull();
    } finally {
      await m.shutdown();
      await run('losetup', ['-d', dev]);
    }
  });
});

describe('many exports', () => {
  it('20 exports created at once are all reachable and distinct', async () => {
    const files = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 5 === 4 ? rawFile(join(env.root, `many-${i}.raw`), `${i + 1}M`) : qcow2(join(env.root, `many-${i}.qcow2`), `${i + 1}M`),
      ),
    );
    const stamp = ts();
    const exports = await Promise.all(
      files.map((f, i) =>
        manager.create({
          vmContextId: 'ctx-many',
          diskId: i,
          type: 'full',
          timestamp: stamp,
          kind: f.endsWith('.raw') ? 'raw' : 'qcow2',
          filePath: f,
          writable: true,
        }),
      ),
    );
    expect(new Set(exports.map((e) => e.name)).size).toBe(20);
    expect(new Set(exports.map((e) => e.port)).size).toBe(20);
    // Each export serves its own file: sizes differ per file.
    const sizes = await Promise.all(exports.map((e) => nbdSize(e.uri)));
    expect(sizes).toEqual(files.map((_, i) => (i + 1) * 1024 * 1024));
    expect((await manager.list()).filter((e) => e.name.startsWith('backup-ctx-many-')).length).toBe(20);
    await Promise.all(exports.map((e) => manager.remove(e.name)));
    expect((await manager.list()).filter((e) => e.name.startsWith('backup-ctx-many-'))).toEqual([]);
  });
});

describe('validation', () => {
  it('refuses bad names and paths with an error saying what is wrong', async () => {
    const good = await qcow2(join(env.root, 'good.qcow2'), '1M');
    const base = { vmContextId: 'ctx-v', diskId: 0, type: 'full', timestamp: ts(), kind: 'qcow2' as const, filePath: good };
    await expectError(manager.create({ ...base, vmContextId: 'vm 1' }), 'INVALID_ARGUMENT', /vmContextId "vm 1" is not allowed \(contains " "\)/);
    await expectError(manager.create({ ...base, vmContextId: 'a\nb' }), 'INVALID_ARGUMENT', /vmContextId .*\(contains "\\n"\)/);
    await expectError(manager.create({ ...base, vmContextId: 'x];rm' }), 'INVALID_ARGUMENT', /contains "\]"/);
    await expectError(manager.create({ ...base, type: 'Full=1' }), 'INVALID_ARGUMENT', /type "Full=1" is not allowed/);
    await expectError(manager.create({ ...base, diskId: '0#' }), 'INVALID_ARGUMENT', /diskId "0#" is not allowed/);
    await expectError(manager.create({ ...base, filePath: 'relative.qcow2' }), 'INVALID_ARGUMENT', /is not absolute/);
    await expectError(manager.create({ ...base, filePath: `${env.root}/../repo/good.qcow2` }), 'INVALID_ARGUMENT', /is not normalized/);
    await expectError(manager.create({ ...base, filePath: `${env.root}/a b.qcow2` }), 'INVALID_ARGUMENT', /contains " "/);
    await expectError(manager.create({ ...base, filePath: `${env.root}/x$(id).qcow2` }), 'INVALID_ARGUMENT', /contains "\$"/);
    await expectError(manager.create({ ...base, filePath: `${env.root}/missing.qcow2` }), 'INVALID_ARGUMENT', /does not exist/);
    await expectError(manager.create({ ...base, filePath: '/etc/passwd' }), 'INVALID_ARGUMENT', /not under an allowed root/);
    await expectError(manager.create({ ...base, filePath: env.root.replace(/\/repo$/, '/state') }), 'INVALID_ARGUMENT', /not under an allowed root/);
    await expectError(manager.create({ ...base, filePath: `${env.root}/` }), 'INVALID_ARGUMENT', /is not normalized/);
    await expectError(manager.create({ ...base, kind: 'block' }), 'INVALID_ARGUMENT', /is not a block device/);
    const notQcow = await rawFile(join(env.root, 'not-qcow.img'), '1M');
    await expectError(manager.create({ ...base, filePath: notQcow }), 'INVALID_ARGUMENT', /is not a readable QCOW2 image/);
    await expectError(manager.remove('bad name'), 'INVALID_ARGUMENT', /export name "bad name" is not allowed/);
    expect(await manager.list()).toEqual([]);
  });

  it('refuses a QCOW2 whose backing file is outside the allowed roots', async () => {
    const outside = await qcow2(join(env.dir, 'outside.qcow2'), '1M');
    const inside = await qcow2(join(env.root, 'escape.qcow2'), '1M', outside);
    await expectError(
      manager.create({ vmContextId: 'ctx-esc', diskId: 0, type: 'incr', timestamp: ts(), kind: 'qcow2', filePath: inside }),
      'INVALID_ARGUMENT',
      /backing file .*outside\.qcow2.* outside the allowed roots/,
    );
  });

  it('refuses a duplicate export name', async () => {
    const a = await qcow2(join(env.root, 'dup-a.qcow2'), '1M');
    const b = await qcow2(join(env.root, 'dup-b.qcow2'), '1M');
    const stamp = ts();
    const first = await manager.create({ vmContextId: 'ctx-dup', diskId: 0, type: 'full', timestamp: stamp, kind: 'qcow2', filePath: a });
    await expectError(
      manager.create({ vmContextId: 'ctx-dup', diskId: 0, type: 'full', timestamp: stamp, kind: 'qcow2', filePath: b }),
      'CONFLICT',
      new RegExp(`export ${first.name} already exists`),
    );
    await manager.remove(first.name);
  });
});

describe('reconcile', () => {
  it('adopts live exports and removes orphans (stray servers, dead records, stale configs)', async () => {
    const store = new MemoryExportRecordStore();
    const m1 = new NbdExportManager(env.config, store);
    const keep = await m1.create({
      vmContextId: 'ctx-rec',
      diskId: 0,
      type: 'full',
      timestamp: ts(),
      kind: 'qcow2',
      filePath: await qcow2(join(env.root, 'rec-keep.qcow2'), '2M'),
      writable: true,
    });
    const keepRaw = await m1.create({
      vmContextId: 'ctx-rec',
      diskId: 1,
      type: 'migrate',
      timestamp: ts(),
      kind: 'raw',
      filePath: await rawFile(join(env.root, 'rec-keep.raw'), '2M'),
    });
    const orphan = await m1.create({
      vmContextId: 'ctx-rec',
      diskId: 2,
      type: 'full',
      timestamp: ts(),
      kind: 'raw',
      filePath: await rawFile(join(env.root, 'rec-orphan.raw'), '2M'),
    });
    const orphanPid = (await findProcesses(`${env.stateDir}/run/${orphan.name}.pid`))[0].pid;
    // The database lost the orphan's record; a dead record points at a gone server.
    await store.remove(orphan.name);
    await store.upsert({ ...(await store.list('test-node'))[0], name: 'backup-dead-disk0-full-20260101T000000', pid: 999_999, port: null });

    // A new manager (as after a crash) over the same store and state dir.
    const m2 = new NbdExportManager(env.config, store);
    const report = await m2.start();
    expect(report.kept.sort()).toEqual([keep.name, keepRaw.name].sort());
    expect(report.removedRecords).toEqual(['backup-dead-disk0-full-20260101T000000']);
    expect(report.killedPids).toContain(orphanPid);
    expect(report.removedConfigs).toContain(orphan.name);
    expect(await isAlive(orphanPid)).toBe(false);
    expect(await nbdSize(orphan.uri)).toBeNull();
    expect(await nbdSize(keep.uri)).toBe(2 * 1024 * 1024);
    expect(await nbdSize(keepRaw.uri)).toBe(2 * 1024 * 1024);
    expect((await m2.get(keep.name))?.virtualSize).toBe(2 * 1024 * 1024);
    await m2.shutdown();
    expect(await findProcesses(`${env.stateDir}/`)).toEqual([]);
  });

  it('stops a server whose image file was deleted, at start and in the periodic sweep', async () => {
    const store = new MemoryExportRecordStore();
    const m1 = new NbdExportManager(env.config, store);
    const a = await m1.create({
      vmContextId: 'ctx-gone',
      diskId: 0,
      type: 'full',
      timestamp: ts(),
      kind: 'qcow2',
      filePath: await qcow2(join(env.root, 'gone-a.qcow2'), '2M'),
      writable: true,
    });
    const b = await m1.create({
      vmContextId: 'ctx-gone',
      diskId: 1,
      type: 'full',
      timestamp: ts(),
      kind: 'qcow2',
      filePath: await qcow2(join(env.root, 'gone-b.qcow2'), '2M'),
      writable: true,
    });
    const pidA = (await findProcesses(`${env.stateDir}/run/${a.name}.pid`))[0].pid;
    const pidB = (await findProcesses(`${env.stateDir}/run/${b.name}.pid`))[0].pid;
    // A worker aborted the point while this exporter was down: the file is gone, its server holds it.
    await rm(join(env.root, 'gone-a.qcow2'));
    const m2 = new NbdExportManager(env.config, store);
    const report = await m2.start();
    expect(report.kept).toEqual([b.name]);
    expect(report.killedPids).toContain(pidA);
    expect(await isAlive(pidA)).toBe(false);
    // While running: the sweep closes it too.
    await rm(join(env.root, 'gone-b.qcow2'));
    expect(await m2.closeOrphans()).toEqual([b.name]);
    expect(await isAlive(pidB)).toBe(false);
    expect(await store.list('test-node')).toEqual([]);
    await m2.shutdown();
  });
});
