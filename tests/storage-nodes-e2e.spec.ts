import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, waitFor } from '@sendense/process';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { startExtraNode, startSystem, waitForJob, type ExtraNode, type System } from './support/system';

/**
 * Two storage nodes on one host, as docs/admin-guide.md adds a second one:
 * node A is the system's own worker and nbd-exporter, node B a second pair
 * of processes with another NODE_NAME and its own repository directory,
 * both on the same database and Redis. Each takes only its own jobs;
 * killing B's worker mid-backup leaves A's backups alone; B's queued and
 * interrupted jobs run when it comes back.
 */

const MiB = 1024 * 1024;
const VM_A = 'node-a-vm';
const VM_B = 'node-b-vm';
const VM_B2 = 'node-b-vm2';
const SIZE: Record<string, number> = { [VM_A]: 256 * MiB, [VM_B]: 384 * MiB, [VM_B2]: 32 * MiB };

interface Row {
  id: string;
  status: string;
  storage_node?: string;
  repository_path: string;
}
interface Doc {
  status: string;
  error: string | null;
  progress: { phase?: string } | null;
  backups: Row[];
  events: { message: string }[];
}

describe('two storage nodes on one database and Redis', () => {
  let sys: System;
  let nodeB: ExtraNode;
  let standIn: StandIn;
  let work: string;
  const B = `nodeb-${process.pid}`;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-nodes-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: Object.entries(SIZE).map(([name, size], i) => ({ name, disks: [{ sizeMiB: size / MiB, content: { type: 'random', percent: 100, seed: i + 1 } }] })),
    });
    sys = await startSystem();
    nodeB = await startExtraNode(sys, B);
    const vc = await sys.call<{ id: string }>('POST', '/api/v1/vcenters', {
      name: 'standin',
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      insecure: true,
      disk_reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl },
    });
    expect(vc.status).toBe(201);
    expect((await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: Object.keys(SIZE) })).status).toBe(200);
    expect((await sys.call('POST', '/api/v1/repositories', { name: 'repo-a', type: 'local', path: sys.repoDir })).status).toBe(201);
    const rb = await sys.call<{ storage_node: string }>('POST', '/api/v1/repositories', {
      name: 'repo-b',
      type: 'local',
      path: nodeB.repoDir,
      storage_node: B,
    });
    expect(rb.status).toBe(201);
    expect(rb.body.storage_node).toBe(B);
  }, 300_000);

  afterAll(async () => {
    await nodeB?.stop();
    await sys?.stop();
    await standIn?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  const start = async (vm: string, repository: string, type: 'full' | 'incremental' = 'full') => {
    const r = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: vm, backup_type: type, repository });
    expect(r.status).toBe(202);
    return r.body.run_id;
  };
  const status = async (runId: string) => (await sys.call<Doc>('GET', `/api/v1/jobs/${runId}`)).body;
  const completed = async (runId: string, what: string) => {
    const doc = await waitForJob<Doc>(sys, runId, 300_000, 500);
    if (doc.status !== 'completed') throw new Error(`${what}: ${doc.status} ${doc.error}`);
    return doc;
  };
  const guestDigest = async (vm: string) => {
    const key = (await standIn.harness!.vm(vm)).disks[0]!.key;
    const h = createHash('sha256');
    for (let off = 0; off < SIZE[vm]!; off += 32 * MiB) h.update(await standIn.harness!.read(vm, key, off, Math.min(32 * MiB, SIZE[vm]! - off)));
    return h.digest('hex');
  };
  const pointDigest = async (repoDir: string, r: Row) => {
    const raw = join(work, `${r.id}.raw`);
    await run('qemu-img', ['convert', '-U', '-O', 'raw', join(repoDir, r.repository_path), raw]);
    try {
      return createHash('sha256')
        .update(await readFile(raw))
        .digest('hex');
    } finally {
      await rm(raw, { force: true });
    }
  };
  const nodeOf = async (id: string) => (await sys.db.prisma.backupJob.findUnique({ where: { id } }))?.storageNode;

  it('each node takes only the jobs of its own repositories and writes only its own directory', async () => {
    const [a, b] = [await start(VM_A, 'repo-a'), await start(VM_B2, 'repo-b')];
    const [da, db] = [await completed(a, 'backup on node A'), await completed(b, 'backup on node B')];
    expect(da.events.some((e) => e.message.includes(`started on node ${sys.node}`))).toBe(true);
    expect(db.events.some((e) => e.message.includes(`started on node ${B}`))).toBe(true);
    expect(await nodeOf(da.backups[0]!.id)).toBe(sys.node);
    expect(await nodeOf(db.backups[0]!.id)).toBe(B);
    expect(existsSync(join(sys.repoDir, da.backups[0]!.repository_path))).toBe(true);
    expect(existsSync(join(nodeB.repoDir, db.backups[0]!.repository_path))).toBe(true);
    expect(existsSync(join(sys.repoDir, db.backups[0]!.repository_path))).toBe(false);
    expect(await pointDigest(nodeB.repoDir, db.backups[0]!)).toBe(await guestDigest(VM_B2));
    // Each worker's log names only its own runs.
    expect(nodeB.logs.get('backup-worker')!.join('\n')).not.toContain(a);
    expect(sys.logs.get('backup-worker')!.join('\n')).not.toContain(b);
  }, 300_000);

  it('the gateway and Bull Board show the queues of both nodes', async () => {
    const repos = await sys.call<{ name: string; storage_node: string }[]>('GET', '/api/v1/repositories');
    expect(repos.body.map((r) => [r.name, r.storage_node]).sort()).toEqual([
      ['repo-a', sys.node],
      ['repo-b', B],
    ]);
    const board = await sys.call<{ queues: { name: string }[] }>('GET', '/admin/queues/api/queues');
    expect(board.status).toBe(200);
    const names = board.body.queues.map((q) => q.name);
    for (const n of [sys.node, B]) expect(names).toEqual(expect.arrayContaining([`backup.${n}`, `maintenance.${n}`]));
  }, 60_000);

  it("killing node B's worker mid-backup leaves node A's backup alone; B's jobs run when it returns", async () => {
    const expectedB = await guestDigest(VM_B);
    const expectedB2 = await guestDigest(VM_B2);
    const onB = await start(VM_B, 'repo-b');
    await waitFor(async () => (await status(onB)).progress?.phase === 'copying', {
      timeoutMs: 120_000,
      intervalMs: 100,
      message: 'the backup on node B to copy',
    });
    const onA = await start(VM_A, 'repo-a');
    await nodeB.kill('backup-worker');
    // Queued while B is down: nobody else may take it.
    const queuedOnB = await start(VM_B2, 'repo-b', 'incremental');
    const da = await completed(onA, 'backup on node A while node B was killed');
    expect(await pointDigest(sys.repoDir, da.backups[0]!)).toBe(await guestDigest(VM_A));
    expect((await status(queuedOnB)).status).toBe('queued');
    expect(sys.logs.get('backup-worker')!.join('\n')).not.toContain(queuedOnB);

    await nodeB.start('backup-worker');
    const [db, db2] = [await completed(onB, 'interrupted backup on node B'), await completed(queuedOnB, 'queued backup on node B')];
    // The killed attempt's rows stay in the run, failed (their images are gone): read the committed point.
    const committed = (d: Doc) => {
      const r = d.backups.find((b) => b.status === 'completed');
      if (!r) throw new Error(`run has no completed restore point: ${JSON.stringify(d.backups)}`);
      return r;
    };
    expect(db.backups.filter((b) => b.status !== 'completed').every((b) => b.status === 'failed')).toBe(true);
    expect(await pointDigest(nodeB.repoDir, committed(db))).toBe(expectedB);
    expect(await pointDigest(nodeB.repoDir, committed(db2))).toBe(expectedB2);
    // The killed attempt left nothing behind: B's directory holds exactly B's committed restore points.
    const files = (await run('find', [nodeB.repoDir, '-name', '*.qcow2'])).stdout.trim().split('\n').filter(Boolean);
    const rows = await sys.db.prisma.backupJob.findMany({ where: { storageNode: B, status: 'completed' } });
    expect(files.sort()).toEqual(rows.map((r) => join(nodeB.repoDir, r.repositoryPath)).sort());
    expect(rows.length).toBeGreaterThanOrEqual(3);
  }, 600_000);
});
