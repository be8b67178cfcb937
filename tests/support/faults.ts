import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@sendense/process';
import { startStandIn, type StandIn, type StandInOptions } from '@sendense/vsphere';
import { registerStandIn, startSystem, waitForJob, type System } from './system';

/**
 * What every fault scenario (tests/faults/) builds on: the built services,
 * the VMware stand-in with the scenario's VMs imported, a repository, and
 * the after-checks the issue asks for (committed points read back, nothing
 * left behind, the next backup succeeds).
 */

export const MiB = 1024 * 1024;

/** Bytes allocated on disk by the QCOW2 images under a directory (how far a copy into a restore point has got). */
export async function allocatedQcow2Bytes(dir: string): Promise<number> {
  let sum = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!e.isFile() || !e.name.endsWith('.qcow2')) continue;
    const st = await stat(join(e.parentPath, e.name)).catch(() => null);
    if (st) sum += st.blocks * 512;
  }
  return sum;
}

export interface BackupRow {
  id: string;
  disk_id: number;
  backup_type: string;
  requested_type: string;
  fallback_reason: string | null;
  status: string;
  bytes_transferred: number;
  parent_backup_id: string | null;
  repository_path: string;
  error_message: string | null;
  suspect_reason: string | null;
  cbt_audit: { sampled: number; mismatched: number; mismatchOffsets: number[]; blockSize: number; bytesRead: number; durationMs: number } | null;
}

export interface JobDoc {
  status: string;
  error: string | null;
  backups: BackupRow[];
  events: { level: string; phase: string; message: string }[];
}

export interface FaultBed {
  sys: System;
  standIn: StandIn;
  work: string;
  /** Device keys of each VM's disks, by VM name. */
  keys: Map<string, number[]>;
  sizes: Map<string, number[]>;
  stop(): Promise<void>;
}

export async function startFaultBed(opts: {
  vms: NonNullable<StandInOptions['vms']>;
  repositories?: { name: string; cbt_audit_samples?: number }[];
  env?: Record<string, string>;
  /** The VMs `vcenter import` imports (default: all of `vms`). */
  importVms?: string[];
}): Promise<FaultBed> {
  const work = await mkdtemp(join(tmpdir(), 'sendense-fault-'));
  const standIn = await startStandIn({ stateDir: join(work, 'vcsim'), vms: opts.vms });
  let sys: System | undefined;
  try {
    sys = await startSystem({ env: opts.env ?? {} });
    await registerStandIn(sys, standIn, opts.importVms ?? opts.vms.map((v) => v.name));
    for (const r of opts.repositories ?? [{ name: 'local' }]) {
      const res = await sys.call('POST', '/api/v1/repositories', { type: 'local', path: join(sys.repoDir, r.name), ...r });
      if (res.status !== 201) throw new Error(`repository ${r.name} answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
    const vms = await sys.call<{ vm_name: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
    const keys = new Map(vms.body.map((v) => [v.vm_name, v.disks.map((d) => d.device_key)]));
    const sizes = new Map(opts.vms.map((v) => [v.name, (v.disks ?? []).map((d) => d.sizeMiB * MiB)]));
    const s = sys;
    return {
      sys: s,
      standIn,
      work,
      keys,
      sizes,
      async stop() {
        await s.stop();
        await standIn.stop();
        await rm(work, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await sys?.stop();
    await standIn.stop();
    throw err;
  }
}

/** Start a backup and wait for its end (any end). */
export async function backupRun(bed: FaultBed, vm: string, type: 'full' | 'incremental' | 'differential', repository = 'local'): Promise<JobDoc & { runId: string; seconds: number }> {
  const started = Date.now();
  const start = await bed.sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: vm, backup_type: type, repository });
  if (start.status !== 202) throw new Error(`backup start answered ${start.status}: ${JSON.stringify(start.body)}`);
  const doc = await waitForJob<JobDoc>(bed.sys, start.body.run_id);
  return { ...doc, runId: start.body.run_id, seconds: (Date.now() - started) / 1000 };
}

/** A backup that must complete. */
export async function backupOk(bed: FaultBed, vm: string, type: 'full' | 'incremental' | 'differential', repository = 'local') {
  const doc = await backupRun(bed, vm, type, repository);
  if (doc.status !== 'completed') {
    throw new Error(`backup ${type} of ${vm} ended ${doc.status}: ${doc.error}\n${bed.sys.logs.get('backup-worker')?.slice(-20).join('\n')}`);
  }
  return doc;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The live guest disk now, hashed. */
export async function guestDigest(bed: FaultBed, vm: string, disk: number): Promise<string> {
  const h = createHash('sha256');
  const size = bed.sizes.get(vm)![disk]!;
  for (let off = 0; off < size; off += 32 * MiB) h.update(await bed.standIn.harness!.read(vm, bed.keys.get(vm)![disk]!, off, Math.min(32 * MiB, size - off)));
  return h.digest('hex');
}

/** What a restore point reads back as (its whole chain), hashed. */
export async function restorePointDigest(bed: FaultBed, b: Pick<BackupRow, 'id' | 'repository_path'>, repository = 'local'): Promise<string> {
  const raw = join(bed.work, `${b.id}.raw`);
  await run('qemu-img', ['convert', '-U', '-O', 'raw', join(bed.sys.repoDir, repository, b.repository_path), raw], { timeoutMs: 120_000 });
  try {
    return sha(await readFile(raw));
  } finally {
    await rm(raw, { force: true });
  }
}

/**
 * What a fault may not leave behind: NBD exports (rows and servers), VM
 * snapshots, mounts, loop devices, FUSE exports, qemu/nbd processes of this
 * system, and half-written restore points or temp files in the repository.
 * Returns the list of leftovers (empty when clean).
 */
export async function leftovers(bed: FaultBed): Promise<string[]> {
  const out: string[] = [];
  const dir = bed.sys.dir;
  const exports = await bed.sys.db.prisma.nbdExport.findMany({ where: { nodeName: bed.sys.node } });
  for (const e of exports) out.push(`nbd_exports row ${e.name} (${e.state}) for ${e.filePath}`);
  for (const vm of await bed.standIn.harness!.vms()) {
    for (const d of vm.disks) for (const s of d.snapshots) out.push(`snapshot ${s} on ${vm.name} disk ${d.key}`);
  }
  const mounts = await readFile('/proc/mounts', 'utf8');
  for (const line of mounts.split('\n')) if (line.includes(dir)) out.push(`mount: ${line}`);
  const loops = await run('losetup', ['-J', '-l'], { timeoutMs: 10_000 }).catch(() => ({ stdout: '{"loopdevices":[]}' }));
  const parsed = JSON.parse(loops.stdout || '{"loopdevices":[]}') as { loopdevices: { name: string; 'back-file': string | null }[] };
  for (const l of parsed.loopdevices) if (l['back-file']?.includes(dir)) out.push(`loop device ${l.name} on ${l['back-file']}`);
  const ps = await run('ps', ['-eo', 'pid=,args='], { timeoutMs: 10_000 });
  for (const line of ps.stdout.split('\n')) {
    if (/qemu-nbd|qemu-storage-daemon|nbd-server|nbdkit|nbdcopy/.test(line) && line.includes(dir)) out.push(`process: ${line.trim()}`);
  }
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.(partial|tmp|writing)$|^\.tmp|\.journal$/.test(e.name)) out.push(`temp file ${p}`);
      else if (e.name.endsWith('.json') && !e.name.startsWith('.')) {
        const text = await readFile(p, 'utf8').catch(() => '');
        if (text.includes('"state": "writing"')) out.push(`half-written restore point ${p}`);
      }
    }
  };
  await walk(bed.sys.repoDir);
  return out;
}

/**
 * Start a backup and SIGKILL the backup-worker once its restore point holds
 * `afterBytes` (mid-copy). Returns the run and when the worker died.
 */
export async function killMidCopy(bed: FaultBed, vm: string, type: 'full' | 'incremental', afterBytes = 4 * MiB): Promise<{ runId: string; killedAt: number }> {
  const before = await allocatedQcow2Bytes(bed.sys.repoDir);
  const start = await bed.sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: vm, backup_type: type, repository: 'local' });
  if (start.status !== 202) throw new Error(`backup start answered ${start.status}: ${JSON.stringify(start.body)}`);
  const { waitFor } = await import('@sendense/process');
  await waitFor(async () => (await allocatedQcow2Bytes(bed.sys.repoDir)) - before >= afterBytes, { timeoutMs: 120_000, intervalMs: 5, message: 'the restore point to grow' });
  const worker = bed.sys.daemons.get('backup-worker')!;
  process.kill(worker.pid!, 'SIGKILL');
  const killedAt = Date.now();
  await waitFor(() => !worker.running, { timeoutMs: 10_000, message: 'the worker to die' });
  return { runId: start.body.run_id, killedAt };
}
