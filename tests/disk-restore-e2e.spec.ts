import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import { ApiKeyRepository } from '@sendense/db';
import { run, waitFor } from '@sendense/process';
import { startStandIn, VSphereClient, type StandIn } from '@sendense/vsphere';
import { ROOT, startSystem, waitForJob, type System } from './support/system';

/**
 * Whole-disk restores end to end on the stand-in and the real services:
 * instant-access NBD exports (read-only and through a temporary overlay)
 * read with nbdcopy and qemu-img, held against delete; image downloads in
 * every format converted back with qemu-img compare; Range on raw.
 */

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const VM = 'disk-restore-vm';
const BLANK_VM = 'disk-restore-blank';

interface BackupRow {
  id: string;
  disk_id: number;
  status: string;
  repository_path: string;
  parent_backup_id: string | null;
}
interface JobDoc {
  status: string;
  error: string | null;
  backups: BackupRow[];
}
interface ExportView {
  name: string;
  backup_id: string;
  uri: string;
  size_bytes: number;
  writable: boolean;
  tls: boolean;
  idle_timeout_seconds: number | null;
  expires_at: string | null;
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

describe('whole-disk restores end to end', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  let deviceKey: number;
  let incr: BackupRow;
  let chainFiles: string[];
  let pointRaw: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-disk-restore-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [
        { name: VM, disks: [{ sizeMiB: 64, content: { type: 'random', percent: 40, seed: 21 } }] },
        { name: BLANK_VM, disks: [{ sizeMiB: 64, content: { type: 'empty' } }] },
      ],
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
    expect((await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: [VM, BLANK_VM] })).status).toBe(200);
    expect((await sys.call('POST', '/api/v1/repositories', { name: 'local', type: 'local', path: sys.repoDir })).status).toBe(201);
    const vms = await sys.call<{ vm_name: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
    deviceKey = vms.body.find((v) => v.vm_name === VM)!.disks[0]!.device_key;

    const backup = async (type: 'full' | 'incremental') => {
      const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: type, repository: 'local' });
      expect(start.status).toBe(202);
      const doc = await waitForJob<JobDoc>(sys, start.body.run_id);
      if (doc.status !== 'completed') throw new Error(`${type} ended ${doc.status}: ${doc.error}`);
      return doc.backups[0]!;
    };
    await backup('full');
    // The guest changes between the two points: data, a zeroed range, the last MiB.
    await standIn.harness!.write(VM, deviceKey, 3 * MiB, randomBytes(2 * MiB));
    await standIn.harness!.zero(VM, deviceKey, 20 * MiB, MiB);
    await standIn.harness!.write(VM, deviceKey, 63 * MiB, randomBytes(MiB));
    incr = await backup('incremental');
    expect(incr.parent_backup_id).not.toBeNull();
    const top = join(sys.repoDir, incr.repository_path);
    const chain = JSON.parse((await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', top])).stdout) as { filename: string }[];
    chainFiles = chain.map((c) => c.filename);
    expect(chainFiles).toHaveLength(2);
    // The restore point's data, as the chain reads (the reference every restore is compared with).
    pointRaw = join(work, 'point.raw');
    await run('qemu-img', ['convert', '-U', '-O', 'raw', top, pointRaw]);
  }, 300_000);

  afterAll(async () => {
    await sys?.stop();
    await standIn?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  async function download(path: string, out: string, headers: Record<string, string> = {}): Promise<Response> {
    const res = await fetch(`${sys.api}${path}`, { headers: { authorization: `Bearer ${sys.adminKey}`, ...headers } });
    if (res.body) await pipeline(Readable.fromWeb(res.body as ReadableStream), createWriteStream(out));
    return res;
  }

  it('an instant-access export reads identical to the restore point (nbdcopy, qemu-img compare), is listed and held against delete', async () => {
    const created = await sys.call<ExportView>('POST', '/api/v1/restore/export', { backup_id: incr.id });
    expect(created.status).toBe(201);
    const exp = created.body;
    expect(exp).toMatchObject({ backup_id: incr.id, writable: false, size_bytes: 64 * MiB, tls: false, idle_timeout_seconds: 3600 });
    expect(exp.uri).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/backup-/);
    const copy = join(work, 'nbdcopy.raw');
    await run('nbdcopy', [exp.uri, copy]);
    await run('cmp', [pointRaw, copy]);
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', pointRaw, exp.uri]);
    await rm(copy);

    const list = await sys.call<ExportView[]>('GET', `/api/v1/restore/export?backup_id=${incr.id}`);
    expect(list.body.map((e) => e.name)).toEqual([exp.name]);
    // A viewer may see the list (metadata), not create one (disk content).
    const viewer = (await new ApiKeyRepository(sys.db.prisma).create('viewer', 'viewer')).key;
    const asViewer = (method: string, body?: unknown) =>
      fetch(`${sys.api}/api/v1/restore/export`, {
        method,
        headers: { authorization: `Bearer ${viewer}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    expect((await asViewer('GET')).status).toBe(200);
    expect((await asViewer('POST', { backup_id: incr.id })).status).toBe(403);

    // Held: the exported point cannot be deleted while the export lives.
    const del = await sys.call<{ message: string }>('DELETE', `/api/v1/backup/${incr.id}`);
    expect(del.status).toBe(409);
    expect(JSON.stringify(del.body)).toMatch(/exported for instant access/);
    // Nor merged: consolidating the chain into the exported point is refused, and no file of the chain changes.
    const sums = await Promise.all(chainFiles.map(sha256));
    const merge = await sys.call<{ message: string }>('POST', '/api/v1/backup/chain/consolidate', { vm_name: VM, disk_id: 0, up_to_backup_id: incr.id });
    expect({ status: merge.status, body: merge.status === 409 ? '' : merge.body }).toEqual({ status: 409, body: '' });
    expect(await Promise.all(chainFiles.map(sha256))).toEqual(sums);
    expect(
      (await sys.call<{ chains: { restore_points: unknown[] }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}&disk_id=0`)).body.chains[0]!.restore_points,
    ).toHaveLength(2);
    // Still served as it was.
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', pointRaw, exp.uri]);

    expect((await sys.call('DELETE', `/api/v1/restore/export/${exp.name}`)).status).toBe(204);
    expect((await sys.call('DELETE', `/api/v1/restore/export/${exp.name}`)).status).toBe(404);
    expect((await sys.call<ExportView[]>('GET', '/api/v1/restore/export')).body).toEqual([]);
    await expect(run('nbdinfo', ['--size', exp.uri])).rejects.toThrow();
  });

  it('writes to a writable export land in a temporary overlay: every file of the chain is unchanged', async () => {
    const before = await Promise.all(chainFiles.map(sha256));
    const created = await sys.call<ExportView>('POST', '/api/v1/restore/export', { backup_id: incr.id, writable: true, idle_timeout_seconds: 600 });
    expect(created.status).toBe(201);
    const exp = created.body;
    expect(exp).toMatchObject({ writable: true, idle_timeout_seconds: 600 });
    // A client (a hypervisor booting the disk, fsck) reads and writes.
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 4M', '-c', 'write -z 40M 8M', '-c', 'read -P 0xab 0 4M', '-c', 'read -P 0 40M 8M', exp.uri]);
    // The rest still reads as the restore point.
    const tail = join(work, 'tail.raw');
    await run('nbdcopy', [exp.uri, tail]);
    const a = await readFile(tail);
    const b = await readFile(pointRaw);
    expect(a.subarray(48 * MiB).equals(b.subarray(48 * MiB))).toBe(true);
    await rm(tail);
    expect((await sys.call('DELETE', `/api/v1/restore/export/${exp.name}`)).status).toBe(204);
    expect(await Promise.all(chainFiles.map(sha256))).toEqual(before);
    const overlays = await readdir(join(sys.env.NBD_STATE_DIR as string, 'overlays'));
    expect(overlays).toEqual([]);
  });

  it.each(['raw', 'qcow2', 'vmdk'] as const)('an image download as %s converts back to the restore point', async (format) => {
    const out = join(work, `image.${format}`);
    const res = await download(`/api/v1/backup/${incr.id}/image?format=${format}`, out);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toContain(`${VM}-disk0-`);
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(0);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', '-f', format, out])).stdout) as Record<string, unknown>;
    expect(info['backing-filename']).toBeUndefined();
    await run('qemu-img', ['compare', '-f', 'raw', '-F', format, pointRaw, out]);
    await rm(out);
    // Nothing is left in the restore-service's scratch space.
    await waitFor(async () => (await readdir(join(sys.env.RESTORE_STATE_DIR as string, 'images')).catch(() => [])).length === 0, {
      timeoutMs: 10_000,
      message: 'the scratch space to be freed',
    });
  });

  it('a raw image download honours Range; unknown formats and missing backups are refused', async () => {
    const out = join(work, 'range.bin');
    const res = await download(`/api/v1/backup/${incr.id}/image?format=raw`, out, { range: 'bytes=3145000-5243000' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 3145000-5243000/${64 * MiB}`);
    const got = await readFile(out);
    expect(got.equals((await readFile(pointRaw)).subarray(3145000, 5243001))).toBe(true);
    expect((await sys.call('GET', `/api/v1/backup/${incr.id}/image?format=vhd`)).status).toBe(400);
    expect((await sys.call('GET', '/api/v1/backup/no-such-backup/image')).status).toBe(404);
    await access(pointRaw);
  });

  it('sendense-ctl restore export and restore image do the same from the command line', async () => {
    const cli = (args: string[]) =>
      run('node', [join(ROOT, 'dist/apps/cli/main.js'), '--json', '-q', ...args], {
        env: { ...process.env, SENDENSE_API_URL: sys.api, SENDENSE_API_KEY: sys.adminKey, HOME: work },
        timeoutMs: 120_000,
      });
    const exp = JSON.parse((await cli(['restore', 'export', '--backup-id', incr.id])).stdout) as ExportView;
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', pointRaw, exp.uri]);
    const listed = JSON.parse((await cli(['restore', 'export', '--list'])).stdout) as ExportView[];
    expect(listed.map((e) => e.name)).toEqual([exp.name]);
    expect(JSON.parse((await cli(['restore', 'export', '--end', exp.name])).stdout)).toEqual({ ended: exp.name });
    const out = join(work, 'cli.qcow2');
    const img = JSON.parse((await cli(['restore', 'image', '--backup-id', incr.id, '--format', 'qcow2', '--output', out])).stdout) as {
      output: string;
      bytes: number;
    };
    expect(img.output).toBe(out);
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', pointRaw, out]);
    await expect(cli(['restore', 'export', '--list', '--end', 'x'])).rejects.toThrow(/exactly one of/);
  });

  describe('writing a restore point back into its VM', () => {
    let vc: VSphereClient;
    interface RunDoc {
      status: string;
      error: string | null;
      progress: { phase: string } | null;
      events: { level: string; phase: string; message: string }[];
    }
    beforeAll(async () => {
      vc = await VSphereClient.connect({ url: standIn.url, username: standIn.username, password: standIn.password, tls: { thumbprint: standIn.thumbprint } });
    });
    afterAll(async () => {
      await vc?.logout().catch(() => undefined);
    });

    async function liveEqualsPoint(vm: string, key: number): Promise<boolean> {
      const live = (await standIn.harness!.vm(vm)).disks.find((d) => d.key === key)!.liveUri;
      const out = join(work, `${vm}-live.raw`);
      await run('nbdcopy', [live, out]);
      try {
        return (await readFile(out)).equals(await readFile(pointRaw));
      } finally {
        await rm(out, { force: true });
      }
    }

    async function restoreRun(body: Record<string, unknown>): Promise<RunDoc> {
      const started = await sys.call<{ run_id: string; mode: string }>('POST', '/api/v1/restore/disk', body);
      expect(started.status).toBe(202);
      return waitForJob<RunDoc>(sys, started.body.run_id);
    }

    it('refuses a powered-on VM with the reason; a quick rollback of the wrecked, powered-off disk reads back as the restore point', async () => {
      // The guest changes after the backup, then the disk is wrecked: partition table and random ranges.
      const GRAIN = 64 * 1024;
      const grains = new Set<number>();
      const mark = (offset: number, length: number) => {
        for (let g = Math.floor(offset / GRAIN); g * GRAIN < offset + length; g++) grains.add(g);
      };
      for (const a of await standIn.harness!.fill(VM, deviceKey, 5, 99)) mark(a.start, a.length);
      await standIn.harness!.write(VM, deviceKey, 0, randomBytes(GRAIN));
      mark(0, GRAIN);
      for (const off of [7 * MiB, 33 * MiB + GRAIN, 50 * MiB]) {
        await standIn.harness!.write(VM, deviceKey, off, randomBytes(8 * GRAIN));
        mark(off, 8 * GRAIN);
      }
      expect(await liveEqualsPoint(VM, deviceKey)).toBe(false);

      const refused = await restoreRun({ backup_id: incr.id, mode: 'quick' });
      expect(refused.status).toBe('failed');
      expect(refused.error).toMatch(/VM_POWERED_ON.*poweredOn; power it off/);

      const vm = await vc.findVm({ name: VM });
      await vc.powerOff(vm.ref);
      const doc = await restoreRun({ backup_id: incr.id, mode: 'quick' });
      if (doc.status !== 'completed') throw new Error(`restore ${doc.status}: ${doc.error}\n${sys.logs.get('backup-worker')?.slice(-15).join('\n')}`);
      expect(await liveEqualsPoint(VM, deviceKey)).toBe(true);
      const done = doc.events.find((e) => e.phase === 'done')!;
      expect(done.message).toMatch(/done: quick/);
      const m = /(\d+) bytes written, (\d+) zeroed/.exec(done.message)!;
      const written = Number(m[1]) + Number(m[2]);
      // The incremental's own changes are also rolled back: the areas changed since the restore point's changeId.
      const changed = grains.size * GRAIN;
      process.stdout.write(`e2e quick rollback: guest changed ${changed} bytes since the restore point, the restore wrote ${written}\n`);
      expect(Math.abs(written - changed)).toBeLessThanOrEqual(changed * 0.1);
      // The export it read from is gone, and the restore point is free again.
      expect((await sys.call<ExportView[]>('GET', '/api/v1/restore/export')).body).toEqual([]);
    });

    it('a full write to a blank new disk of another VM reads back as the restore point', async () => {
      const vms = await sys.call<{ vm_name: string; context_id: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
      const blank = vms.body.find((v) => v.vm_name === BLANK_VM)!;
      const vm = await vc.findVm({ name: BLANK_VM });
      await vc.powerOff(vm.ref);
      const doc = await restoreRun({ backup_id: incr.id, mode: 'full', target_vm_context_id: blank.context_id });
      if (doc.status !== 'completed') throw new Error(`restore ${doc.status}: ${doc.error}`);
      expect(doc.events.find((e) => e.phase === 'done')!.message).toMatch(/done: full/);
      expect(await liveEqualsPoint(BLANK_VM, blank.disks[0]!.device_key)).toBe(true);
      expect(
        (await sys.call('POST', '/api/v1/restore/disk', { backup_id: incr.id, target_vm_context_id: blank.context_id, target_device_key: 4242 })).status,
      ).toBe(400);
      // From the command line, quick: the blank VM was never tracked (CBT off), so it falls back to full and says why.
      const r = await run(
        'node',
        [join(ROOT, 'dist/apps/cli/main.js'), '--json', '-q', 'restore', 'disk', '--backup-id', incr.id, '--target-vm', blank.context_id, '--wait'],
        { env: { ...process.env, SENDENSE_API_URL: sys.api, SENDENSE_API_KEY: sys.adminKey, HOME: work }, timeoutMs: 120_000 },
      );
      const cliDoc = JSON.parse(r.stdout) as RunDoc;
      expect(cliDoc.status).toBe('completed');
      expect(cliDoc.events.map((e) => e.message).join('\n')).toMatch(/fell back to a full write \((invalid-change-id|cbt-reset|cbt-disabled)\)/);
      expect(await liveEqualsPoint(BLANK_VM, blank.disks[0]!.device_key)).toBe(true);
    });
  });
});
