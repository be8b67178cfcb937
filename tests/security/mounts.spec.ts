import { run } from '@sendense/process';
import { backupOk, startFaultBed, type FaultBed } from '../support/faults';

/**
 * Issue 14, finding 6: ten parallel mounts of one backup made ten loop
 * devices, and one key could hold any number of mounts. Now parallel mounts
 * of one restore point share one mount (one qemu-storage-daemon, one set of
 * loop devices), and one API key holds at most RESTORE_MAX_MOUNTS_PER_KEY
 * (2 here) mounts; a shared mount does not count again.
 */

const VM = 'sec-mount-vm';

interface Mount {
  mount_id: string;
  partitions: { name: string; mounted: boolean }[];
}

describe('mounts: shared per restore point, capped per API key (issue 14)', () => {
  let bed: FaultBed;
  const points: string[] = [];
  const keys: Record<'one' | 'two', string> = { one: '', two: '' };

  const as = async <T>(key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const r = await fetch(`${bed.sys.api}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: (text ? JSON.parse(text) : null) as T };
  };
  const mount = (key: string, backupId: string) => as<Mount & { message?: string }>(key, 'POST', '/api/v1/restore/mount', { backup_id: backupId });

  /** qemu-storage-daemons and loop devices of this system. */
  const machinery = async () => {
    const ps = await run('ps', ['-eo', 'args='], { timeoutMs: 10_000 });
    const daemons = ps.stdout.split('\n').filter((l) => l.includes('qemu-storage-daemon') && l.includes(bed.sys.dir)).length;
    const loops = JSON.parse((await run('losetup', ['-J', '-l'], { timeoutMs: 10_000 })).stdout || '{"loopdevices":[]}') as {
      loopdevices: { 'back-file': string | null }[];
    };
    return { daemons, loops: loops.loopdevices.filter((l) => l['back-file']?.includes(bed.sys.dir)).length };
  };

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [
        {
          name: VM,
          changeTrackingEnabled: true,
          disks: [{ sizeMiB: 48, content: { type: 'filesystem', filesystem: 'ext4', partitionTable: 'gpt', files: { '/etc/hostname': 'sec\n' } } }],
        },
      ],
      env: { RESTORE_MAX_MOUNTS_PER_KEY: '2' },
    });
    const key = bed.keys.get(VM)![0]!;
    for (const [i, type] of (['full', 'incremental', 'incremental'] as const).entries()) {
      if (i > 0) await bed.standIn.harness!.writeFile(VM, key, `/etc/step-${i}`, `step ${i}\n`);
      points.push((await backupOk(bed, VM, type)).backups[0]!.id);
    }
    for (const k of ['one', 'two'] as const) {
      const r = await bed.sys.call<{ key: string }>('POST', '/api/v1/apikeys', { name: `mount-${k}`, role: 'operator' });
      if (r.status !== 201) throw new Error(`key ${k}: ${r.status} ${JSON.stringify(r.body)}`);
      keys[k] = r.body.key;
    }
  }, 420_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  it('ten parallel mounts of one backup share one mount: one qemu-storage-daemon, one set of loop devices', async () => {
    const before = await machinery();
    const all = await Promise.all(Array.from({ length: 10 }, () => mount(keys.one, points[0]!)));
    expect(all.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(new Set(all.map((r) => r.body.mount_id)).size).toBe(1);
    const after = await machinery();
    expect(after.daemons - before.daemons).toBe(1);
    const partitions = all[0]!.body.partitions.length;
    expect(partitions).toBeGreaterThan(0);
    // One whole-disk loop device plus one per partition, or one per partition: never ten sets.
    expect(after.loops - before.loops).toBeGreaterThanOrEqual(1);
    expect(after.loops - before.loops).toBeLessThanOrEqual(partitions + 1);
    expect(await bed.sys.db.prisma.restoreMount.count({ where: { backupId: points[0]! } })).toBe(1);
  }, 120_000);

  it('one key holds at most RESTORE_MAX_MOUNTS_PER_KEY mounts (429 saying what to do); a shared mount and another key are not held back', async () => {
    const shared = await mount(keys.two, points[0]!);
    expect(shared.status).toBe(201);
    const second = await mount(keys.one, points[1]!);
    expect(second.status).toBe(201);
    const before = await machinery();
    const third = await mount(keys.one, points[2]!);
    expect(third.status).toBe(429);
    expect(third.body.message).toMatch(/holds 2 mounts.*RESTORE_MAX_MOUNTS_PER_KEY=2.*unmount one/);
    // Nothing was mounted and no row is left for the refused request.
    expect(await machinery()).toEqual(before);
    expect(await bed.sys.db.prisma.restoreMount.count({ where: { backupId: points[2]! } })).toBe(0);
    // A restore point this key has mounted already is shared, even at the cap.
    expect((await mount(keys.one, points[1]!)).body.mount_id).toBe(second.body.mount_id);
    // The other key reused the first mount, so it holds none of its own and may mount.
    const other = await mount(keys.two, points[2]!);
    expect(other.status).toBe(201);
    // Unmounting gives the slot back.
    expect((await as(keys.one, 'DELETE', `/api/v1/restore/${second.body.mount_id}`)).status).toBe(204);
    expect((await mount(keys.one, points[1]!)).status).toBe(201);
    const rows = await bed.sys.db.prisma.restoreMount.findMany({ select: { backupId: true, apiKeyId: true } });
    expect(rows.every((r) => r.apiKeyId !== null)).toBe(true);
  }, 120_000);
});
