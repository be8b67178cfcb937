import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { seedBackup, seedVm } from './gateway-seed.spec-helper';
import { NbdExportRepository, type NbdExportRecord } from './nbd-exports.repository';
import { RestoreMountRepository } from './restore-mounts.repository';

describe('restore points held by exports and mounts, per repository', () => {
  let db: TestDatabase;
  let exportsRepo: NbdExportRepository;
  let mounts: RestoreMountRepository;
  let a: { contextId: string; repositoryId: string };
  let b: { contextId: string; repositoryId: string };
  let a1: string;
  let a2: string;
  let b1: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    exportsRepo = new NbdExportRepository(db.prisma);
    mounts = new RestoreMountRepository(db.prisma);
    a = await seedVm(db.prisma, 'vm-a');
    b = await seedVm(db.prisma, 'vm-b');
    a1 = await seedBackup(db.prisma, a, { runId: 'ra1' });
    a2 = await seedBackup(db.prisma, a, { runId: 'ra2' });
    b1 = await seedBackup(db.prisma, b, { runId: 'rb1' });
  }, 60_000);
  afterAll(() => db?.drop());

  const exportRow = (name: string, restorePointId: string | null) =>
    db.prisma.nbdExport.create({
      data: {
        name,
        kind: restorePointId ? 'restore' : 'target',
        server: 'qemu-nbd',
        filePath: `/srv/${name}.qcow2`,
        host: '127.0.0.1',
        port: 10809,
        nodeName: 'n1',
        restorePointId,
        state: 'active',
      },
    });

  it('names only the restore points of the repository asked about, each once', async () => {
    await exportRow('e1', a1);
    await exportRow('e2', a1);
    await exportRow('e3', b1);
    await exportRow('e4', null);
    // An export whose restore point row is gone already counts for no repository.
    await exportRow('e5', 'no-such-backup');
    expect(await exportsRepo.servedRestorePoints(a.repositoryId)).toEqual([a1]);
    expect((await exportsRepo.servedRestorePoints(b.repositoryId)).sort()).toEqual([b1]);
    expect(await exportsRepo.servedRestorePoints(a.repositoryId, a1)).toEqual([a1]);
    expect(await exportsRepo.servedRestorePoints(a.repositoryId, a2)).toEqual([]);
    expect(await exportsRepo.servedRestorePoints(a.repositoryId, b1)).toEqual([]);
  });

  it('mounts hold their restore point only while mounting, mounted or unmounting', async () => {
    await mounts.createPending({ id: 'm-a2', backupId: a2, nodeName: 'n2' });
    await mounts.createPending({ id: 'm-b1', backupId: b1, nodeName: 'n1' });
    expect(await mounts.heldInRepository(a.repositoryId)).toEqual([a2]);
    await db.prisma.restoreMount.update({ where: { id: 'm-a2' }, data: { state: 'failed' } });
    expect(await mounts.heldInRepository(a.repositoryId)).toEqual([]);
    expect(await mounts.heldInRepository(b.repositoryId)).toEqual([b1]);
  });
});

describe('NbdExportRepository as the exporter record store', () => {
  let db: TestDatabase;
  let repo: NbdExportRepository;
  beforeAll(async () => {
    db = await createTestDatabase();
    repo = new NbdExportRepository(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  const at = new Date('2026-01-02T03:04:05Z');
  const rec = (name: string, over: Partial<NbdExportRecord> = {}): NbdExportRecord => ({
    name,
    kind: 'qcow2',
    server: 'qemu-nbd',
    filePath: `/srv/${name}.qcow2`,
    writable: true,
    host: '127.0.0.1',
    port: 10810,
    socketPath: null,
    pid: 1,
    nodeName: 'n1',
    backupJobId: null,
    restorePointId: null,
    overlayPath: null,
    idleTimeoutSeconds: null,
    lastActiveAt: at,
    tlsMode: null,
    state: 'starting',
    createdAt: at,
    updatedAt: at,
    ...over,
  });

  it('upserts (createdAt kept), lists one node oldest first, removes idempotently', async () => {
    await repo.upsert(rec('late', { createdAt: new Date('2026-01-03T00:00:00Z') }));
    await repo.upsert(rec('early'));
    await repo.upsert(rec('other-node', { nodeName: 'n2' }));
    await repo.upsert(rec('early', { state: 'active', pid: 42, tlsMode: 'psk', createdAt: new Date('2030-01-01T00:00:00Z') }));
    const got = await repo.list('n1');
    expect(got.map((r) => r.name)).toEqual(['early', 'late']);
    expect(got[0]).toMatchObject({ state: 'active', pid: 42, tlsMode: 'psk', createdAt: at, lastActiveAt: at });
    await repo.remove('early');
    await repo.remove('early');
    expect((await repo.list('n1')).map((r) => r.name)).toEqual(['late']);
    expect((await repo.list('n2')).map((r) => r.name)).toEqual(['other-node']);
  });

  it('reads a row with a kind, server or state this version does not know as removing (reconcile drops it)', async () => {
    await db.prisma.nbdExport.create({
      data: {
        name: 'odd',
        kind: 'future-kind',
        server: 'qemu-nbd',
        filePath: '/srv/odd',
        host: '127.0.0.1',
        nodeName: 'n3',
        state: 'active',
        tlsMode: 'weird',
      },
    });
    const [odd] = await repo.list('n3');
    expect(odd).toMatchObject({ name: 'odd', kind: 'raw', state: 'removing', tlsMode: null });
    // No last activity recorded: the creation time stands for it.
    expect(odd!.lastActiveAt).toEqual(odd!.createdAt);
  });
});
