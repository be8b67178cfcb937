import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadWorkerSettings } from '@sendense/config';
import { run } from '@sendense/process';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { startSystem, waitForJob, type System } from './support/system';

/**
 * Five VMs with two disks each, backed up at once through the real services
 * and the VMware stand-in: every run succeeds, every restore point reads back
 * as its snapshot, the worker runs BACKUP_CONCURRENCY of them side by side
 * (no more), and incrementals of all five at once after guest writes too.
 */

const MiB = 1024 * 1024;
const VMS = Array.from({ length: 5 }, (_, i) => `conc-vm-${i + 1}`);
const SIZES = [64 * MiB, 48 * MiB];

interface Row {
  id: string;
  disk_id: number;
  backup_type: string;
  status: string;
  repository_path: string;
}
interface Doc {
  status: string;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
  backups: Row[];
}

describe('five VMs x two disks at once', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  const keys = new Map<string, number[]>();

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-conc-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: VMS.map((name, i) => ({
        name,
        disks: [
          { sizeMiB: SIZES[0]! / MiB, content: { type: 'random', percent: 100, seed: 10 * i + 1 } },
          { sizeMiB: SIZES[1]! / MiB, content: { type: 'random', percent: 50, seed: 10 * i + 2 } },
        ],
      })),
    });
    sys = await startSystem();
    const vc = await sys.call<{ id: string }>('POST', '/api/v1/vcenters', {
      name: 'standin',
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      insecure: true,
      disk_reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl },
    });
    expect(vc.status).toBe(201);
    expect((await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: VMS })).status).toBe(200);
    expect((await sys.call('POST', '/api/v1/repositories', { name: 'local', type: 'local', path: sys.repoDir })).status).toBe(201);
    for (const vm of VMS)
      keys.set(
        vm,
        (await standIn.harness!.vm(vm)).disks.map((d) => d.key),
      );
  }, 300_000);

  afterAll(async () => {
    await sys?.stop();
    await standIn?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  const guestDigest = async (vm: string, disk: number) => {
    const h = createHash('sha256');
    for (let off = 0; off < SIZES[disk]!; off += 32 * MiB) {
      h.update(await standIn.harness!.read(vm, keys.get(vm)![disk]!, off, Math.min(32 * MiB, SIZES[disk]! - off)));
    }
    return h.digest('hex');
  };
  const pointDigest = async (r: Row) => {
    const raw = join(work, `${r.id}.raw`);
    await run('qemu-img', ['convert', '-U', '-O', 'raw', join(sys.repoDir, r.repository_path), raw]);
    try {
      return createHash('sha256')
        .update(await readFile(raw))
        .digest('hex');
    } finally {
      await rm(raw, { force: true });
    }
  };

  async function allAtOnce(type: 'full' | 'incremental'): Promise<Map<string, Doc>> {
    const expected = new Map<string, string[]>();
    for (const vm of VMS) expected.set(vm, [await guestDigest(vm, 0), await guestDigest(vm, 1)]);
    const starts = await Promise.all(
      VMS.map((vm) => sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: vm, backup_type: type, repository: 'local' })),
    );
    for (const s of starts) expect(s.status).toBe(202);
    const docs = await Promise.all(starts.map((s) => waitForJob<Doc>(sys, s.body.run_id, 300_000, 500)));
    const out = new Map<string, Doc>();
    for (const [i, doc] of docs.entries()) {
      const vm = VMS[i]!;
      if (doc.status !== 'completed') throw new Error(`${type} of ${vm}: ${doc.status} ${doc.error}\n${sys.logs.get('backup-worker')?.slice(-30).join('\n')}`);
      expect(doc.backups).toHaveLength(2);
      for (const r of doc.backups) {
        expect(r).toMatchObject({ status: 'completed', backup_type: type });
        expect({ vm, disk: r.disk_id, digest: await pointDigest(r) }).toEqual({ vm, disk: r.disk_id, digest: expected.get(vm)![r.disk_id] });
      }
      out.set(vm, doc);
    }
    return out;
  }

  /** Most runs that were in the worker at the same moment. */
  const maxOverlap = (docs: Doc[]) => {
    const edges = docs.flatMap((d) => [
      { t: Date.parse(d.started_at!), d: 1 },
      { t: Date.parse(d.finished_at!), d: -1 },
    ]);
    edges.sort((a, b) => a.t - b.t || a.d - b.d);
    let cur = 0;
    let max = 0;
    for (const e of edges) max = Math.max(max, (cur += e.d));
    return max;
  };

  it('five fulls started at once all complete and read back; the worker runs BACKUP_CONCURRENCY at a time', async () => {
    const docs = [...(await allAtOnce('full')).values()];
    const concurrency = loadWorkerSettings({ ...sys.env }).BACKUP_CONCURRENCY;
    expect(maxOverlap(docs)).toBe(Math.min(concurrency, VMS.length));
  }, 600_000);

  it('after guest writes on every VM, five incrementals at once all complete and read back', async () => {
    for (const [i, vm] of VMS.entries()) {
      await standIn.harness!.fill(vm, keys.get(vm)![0]!, 5, 500 + i);
      await standIn.harness!.fill(vm, keys.get(vm)![1]!, 5, 600 + i);
    }
    await allAtOnce('incremental');
  }, 600_000);
});
