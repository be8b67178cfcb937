import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackupVmJobData, PreparedDisk } from '@sendense/contracts';
import { BackupChainRepository, BackupJobRepository, BackupRepositoryRepository, chainRow, VmContextRepository, VmDiskRepository } from '@sendense/db';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import { LocalQcow2Repository } from '@sendense/storage';
import type { JobEventLog } from '../job-event-log';
import type { BackupDeps, BackupRun } from '../run-context';
import { planDisks } from './plan.phase';
import { chooseBases } from './prepare.phase';

// The prepare (bases) and plan phases on a real database and a real local QCOW2 repository.
jest.setTimeout(60_000);

const MiB = 1024 * 1024;
const prepared = (deviceKey: number, over: Partial<PreparedDisk> = {}): PreparedDisk => ({
  deviceKey,
  label: `Hard disk ${deviceKey}`,
  capacityBytes: MiB,
  fileName: `[ds] vm/${deviceKey}.vmdk`,
  changeId: `cid-now-${deviceKey}`,
  mode: 'incremental',
  bytesToCopy: 4096,
  extentCount: 1,
  ...over,
});

describe('backup phases: bases and plan', () => {
  let db: TestDatabase;
  let dir: string;
  let repo: LocalQcow2Repository;
  let d: BackupDeps;
  let repositoryId: string;
  let fullId: string;
  const vmContextId = 'ctx-plan';

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await mkdtemp(join(tmpdir(), 'plan-phase-'));
    repo = await LocalQcow2Repository.open({ root: dir });
    // Only the database-facing parts are used by these phases: the agent and exporter are never called.
    const unused = new Proxy(
      {},
      {
        get: (_t, p) => {
          throw new Error(`unexpected call to ${String(p)}`);
        },
      },
    );
    d = {
      vms: new VmContextRepository(db.prisma),
      disks: new VmDiskRepository(db.prisma),
      jobs: new BackupJobRepository(db.prisma),
      chains: new BackupChainRepository(db.prisma),
      repositoryRows: new BackupRepositoryRepository(db.prisma),
      events: unused as JobEventLog,
      exporter: unused as BackupDeps['exporter'],
      capture: unused as BackupDeps['capture'],
      nodeName: 'node-a',
      options: {},
    };
    await db.prisma.vmContext.create({ data: { contextId: vmContextId, vmName: 'vm-plan', vcenterHost: 'vc', vmMoref: 'vm-7' } });
    await db.prisma.vmDisk.create({ data: { id: `${vmContextId}-2000`, vmContextId, diskIndex: 0, deviceKey: 2000, capacityBytes: BigInt(MiB) } });
    await db.prisma.vmDisk.create({ data: { id: `${vmContextId}-2001`, vmContextId, diskIndex: 1, deviceKey: 2001, capacityBytes: BigInt(MiB) } });
    repositoryId = (await d.repositoryRows.create({ name: 'local', repositoryType: 'local', config: { path: dir }, storageNode: 'node-a' })).id;
    // Disk 0 has a committed full in the repository, its row and its chain row.
    const h = await repo.createRestorePoint({ vmContextId, diskIndex: 0, diskKey: '2000', type: 'full', virtualSize: MiB, expectedBytes: 0, metadata: {} });
    fullId = h.id;
    await d.jobs.create({
      id: fullId,
      vmContextId,
      vmName: 'vm-plan',
      runId: 'run-0',
      diskId: 0,
      backupType: 'full',
      requestedType: 'full',
      fallbackReason: null,
      repositoryId,
      repositoryType: 'local',
      repositoryPath: repo.imageKey(h.record),
      parentBackupId: null,
      previousChangeId: null,
      totalBytes: 0,
      virtualSizeBytes: MiB,
      storageNode: 'node-a',
      queueJobId: 'run-0',
    });
    const rp = await repo.commit(fullId, { changeId: 'cid-full' });
    await db.prisma.backupJob.update({ where: { id: fullId }, data: { status: 'completed', changeId: 'cid-full' } });
    await db.prisma.backupChain.create({ data: { id: `chain-${fullId}`.slice(0, 64), vmContextId, diskId: 0, ...chainRow([rp]) } });
    // Disk 1's chain names a restore point the repository does not have.
    await d.jobs.create({
      id: 'gone-1',
      vmContextId,
      vmName: 'vm-plan',
      runId: 'run-0',
      diskId: 1,
      backupType: 'full',
      requestedType: 'full',
      fallbackReason: null,
      repositoryId,
      repositoryType: 'local',
      repositoryPath: 'x',
      parentBackupId: null,
      previousChangeId: null,
      totalBytes: 0,
      virtualSizeBytes: MiB,
      storageNode: 'node-a',
      queueJobId: 'run-0',
    });
    await db.prisma.backupJob.update({ where: { id: 'gone-1' }, data: { status: 'completed', changeId: 'cid-gone' } });
    await db.prisma.backupChain.create({
      data: { id: 'chain-gone-1', vmContextId, diskId: 1, fullBackupId: 'gone-1', latestBackupId: 'gone-1', totalBackups: 1, totalSizeBytes: 0n },
    });
  });
  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function runOf(requestedType: BackupVmJobData['requestedType']): Promise<BackupRun> {
    const ctx = (await d.vms.findForBackup(vmContextId))!;
    const repoRow = (await d.repositoryRows.find(repositoryId))!;
    const data: BackupVmJobData = { runId: `run-${requestedType}`, vmContextId, requestedType, repositoryId, requestedBy: 'spec' };
    return {
      data,
      ctl: { signal: new AbortController().signal, progress: () => undefined },
      ctx,
      vm: 'VM vm-plan',
      repoRow,
      repo,
      bases: new Map(),
      plans: [],
    };
  }

  it('an incremental builds on the chain of a disk whose restore point is in the repository; a broken chain makes the disk full, saying why', async () => {
    const run = await runOf('incremental');
    await chooseBases(d, run);
    expect(run.bases.get(2000)).toEqual({ parentId: fullId, previousChangeId: 'cid-full', reason: null });
    expect(run.bases.get(2001)).toEqual({
      parentId: null,
      previousChangeId: null,
      reason: 'the chain is broken: restore point gone-1 is missing from the repository',
    });
    await planDisks(d, run, [prepared(2000), prepared(2001, { mode: 'full', fullReason: 'no-previous-change-id' })]);
    expect(run.plans.map((p) => [p.disk.diskIndex, p.type, p.parentId, p.previousChangeId, p.fallbackReason])).toEqual([
      [0, 'incremental', fullId, 'cid-full', null],
      [1, 'full', null, null, 'the chain is broken: restore point gone-1 is missing from the repository'],
    ]);
  });

  it("the agent's own reason for a full wins (CBT reset, with its detail); a disk new to the VM gets the next free index", async () => {
    const run = await runOf('incremental');
    await chooseBases(d, run);
    await planDisks(d, run, [prepared(2000, { mode: 'full', fullReason: 'cbt-reset', fullReasonDetail: 'fault 42' }), prepared(2002, { mode: 'full' })]);
    expect(run.plans[0]).toMatchObject({ type: 'full', parentId: null, fallbackReason: 'vCenter reset change tracking (CBT) for this disk (fault 42)' });
    expect(run.plans[1]).toMatchObject({ type: 'full', fallbackReason: 'the disk is new' });
    expect(run.plans[1]!.disk).toMatchObject({ diskIndex: 2, deviceKey: 2002 });
    expect((await d.disks.listForVm(vmContextId)).map((x) => x.deviceKey)).toEqual([2000, 2001, 2002]);
  });

  it('a resized disk is a full that names the resize, also when vCenter refused its old changeId; an incremental of it is refused', async () => {
    const run = await runOf('incremental');
    await chooseBases(d, run);
    await planDisks(d, run, [prepared(2000, { capacityBytes: 2 * MiB, mode: 'full', fullReason: 'cbt-reset' })]);
    expect(run.plans[0]).toMatchObject({
      type: 'full',
      parentId: null,
      previousChangeId: null,
      fallbackReason: 'the disk was resized since the last backup (1 MiB -> 2 MiB)',
    });
    const again = await runOf('incremental');
    await chooseBases(d, again);
    await expect(planDisks(d, again, [prepared(2000, { capacityBytes: 2 * MiB })])).rejects.toThrow(
      /disk 0 of VM vm-plan was resized but the Capture Agent prepared it as an incremental/,
    );
  });

  it('a requested full has no base and no fallback reason', async () => {
    const run = await runOf('full');
    await chooseBases(d, run);
    expect([...run.bases.values()].every((b) => b.parentId === null && b.reason === 'a full backup was requested')).toBe(true);
    await planDisks(d, run, [prepared(2000, { mode: 'full', fullReason: 'requested' })]);
    expect(run.plans[0]).toMatchObject({ type: 'full', parentId: null, fallbackReason: null });
  });
});
