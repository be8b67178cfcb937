/**
 * `npm run bench -- backup --json`
 *
 * Full-backup throughput through the whole system (API call to job
 * completed: queue, worker, nbd-exporter's qemu-nbd target, Capture Agent,
 * stand-in snapshot over NBD) against nbdcopy copying the same kind of
 * snapshot into the same kind of target (a fresh QCOW2 served writable by
 * qemu-nbd) in the same run; then an incremental after the guest changed 5%
 * of the disk, as fractions of the full. Median of several runs each,
 * after one unmeasured run of each, alternating which goes first.
 * One JSON object per line on stdout; progress goes to stderr.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdExporterClient } from '@sendense/contracts';
import { run } from '@sendense/process';
import { startStandIn, VSphereClient } from '@sendense/vsphere';
import { startSystem, waitForJob, type System } from '../tests/support/system';

const MiB = 1024 * 1024;
const VM = 'bench-vm';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const log = (s: string) => process.stderr.write(`[bench backup] ${s}\n`);

interface Row {
  id: string;
  disk_id: number;
  backup_type: string;
  bytes_transferred: number;
  allocated_bytes: number;
}

async function timedBackup(sys: System, type: 'full' | 'incremental'): Promise<{ seconds: number; row: Row }> {
  const t0 = Date.now();
  const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: type, repository: 'bench' });
  if (start.status !== 202) throw new Error(`start ${type}: ${start.status} ${JSON.stringify(start.body)}`);
  const doc = await waitForJob<{
    status: string;
    error: string | null;
    finished_at: string | null;
    backups: Row[];
    events: { at: string; phase: string; message: string }[];
  }>(sys, start.body.run_id, 900_000, 250);
  // The end is when the queue marked the job completed (same clock, same
  // machine), not when a poll noticed: polling fast enough to be exact
  // would itself load the API and database during the copy.
  if (!doc.finished_at) throw new Error(`job ${start.body.run_id} has no finished_at`);
  const seconds = (Date.parse(doc.finished_at) - t0) / 1000;
  // Where the time went, for whoever tunes this (stderr only).
  const first = doc.events[0] ? Date.parse(doc.events[0].at) : 0;
  for (const e of doc.events) log(`  +${((Date.parse(e.at) - first) / 1000).toFixed(2)}s ${e.phase}: ${e.message}`);
  if (doc.status !== 'completed') throw new Error(`${type} backup ${doc.status}: ${doc.error}`);
  return { seconds, row: doc.backups[0]! };
}

export async function main(args: string[]): Promise<void> {
  const sizeMiB = Number(args.find((a) => a.startsWith('--size-mib='))?.split('=')[1] ?? 2048);
  const runs = Number(args.find((a) => a.startsWith('--runs='))?.split('=')[1] ?? 3);
  const work = await mkdtemp(join(tmpdir(), 'sendense-bench-backup-'));
  log(`dense ${sizeMiB} MiB disk, ${runs} runs each; work dir ${work}`);
  const standIn = await startStandIn({
    stateDir: join(work, 'vcsim'),
    vms: [{ name: VM, disks: [{ sizeMiB, content: { type: 'random', percent: 100, seed: 1 } }] }],
    startTimeoutMs: 600_000,
  });
  let sys: System;
  try {
    sys = await startSystem();
  } catch (err) {
    await standIn.stop();
    await rm(work, { recursive: true, force: true });
    throw err;
  }
  try {
    const vc = await sys.call<{ id: string }>('POST', '/api/v1/vcenters', {
      name: 'bench',
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      insecure: true,
      disk_reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl },
    });
    await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: [VM] });
    await sys.call('POST', '/api/v1/repositories', { name: 'bench', type: 'local', path: sys.repoDir });
    const vm = await standIn.harness!.vm(VM);
    const deviceKey = vm.disks[0]!.key;
    const bytes = sizeMiB * MiB;

    // nbdcopy: the same snapshot path (vCenter snapshot → stand-in NBD export)
    // into the same kind of target: a fresh QCOW2 exported writable by the
    // system's own nbd-exporter (qemu-nbd, same cache mode), flushed at the end.
    const client = await VSphereClient.connect({ url: standIn.url, username: standIn.username, password: standIn.password, tls: { insecure: true }, keepAliveMs: 0 });
    const exporter = NbdExporterClient.connect({ url: sys.env['NBD_EXPORTER_URL'], token: sys.env['SENDENSE_INTERNAL_TOKEN'] });
    const nbdcopyOnce = async (label: string): Promise<number> => {
      const snap = await client.createSnapshot({ type: 'VirtualMachine', value: vm.moref }, { name: `bench-${label}` });
      const loc = await standIn.harness!.snapshotNbd(VM, snap.value, deviceKey);
      const target = join(sys.dir, `nbdcopy-${label.replace(/\W+/g, '-')}.qcow2`);
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', target, String(bytes)]);
      const exp = await exporter.createExport({ vmContextId: 'bench', diskId: 0, type: 'nbdcopy', kind: 'qcow2', filePath: target, writable: true });
      const t0 = process.hrtime.bigint();
      await run('nbdcopy', ['--flush', loc.uri, exp.uri], { timeoutMs: 900_000 });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      await exporter.removeExport(exp.name);
      await client.removeSnapshot(snap);
      await rm(target, { force: true });
      log(`nbdcopy ${label}: ${seconds.toFixed(2)} s`);
      return seconds;
    };
    // The system: full backups through the API. Only the latest full is
    // kept, as nbdcopy's target is removed after each run: both sides then
    // write into recycled page cache rather than one of them into memory
    // the machine never touched before (slow on a fresh VM).
    let latestFull: string | undefined;
    const fullOnce = async (label: string): Promise<{ seconds: number; row: Row }> => {
      const r = await timedBackup(sys, 'full');
      if (latestFull) {
        const del = await sys.call('DELETE', `/api/v1/backup/${latestFull}`);
        if (del.status >= 300) throw new Error(`deleting the previous full ${latestFull}: ${del.status} ${JSON.stringify(del.body)}`);
      }
      latestFull = r.row.id;
      log(`full backup ${label}: ${r.seconds.toFixed(2)} s, ${r.row.bytes_transferred} bytes`);
      return r;
    };
    // Between runs: write back and discard what the last run left (the
    // removed target or full), so that it does not land on the next run.
    const settle = async () => {
      await run('sync', []);
      await new Promise((r) => setTimeout(r, 2000));
    };
    // One unmeasured run of each, then measured runs alternating who goes first.
    await nbdcopyOnce('warm-up');
    await fullOnce('warm-up');
    const nbdcopyTimes: number[] = [];
    const fulls: { seconds: number; row: Row }[] = [];
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? ['nbdcopy', 'project'] : ['project', 'nbdcopy'];
      for (const who of order) {
        await settle();
        if (who === 'nbdcopy') nbdcopyTimes.push(await nbdcopyOnce(`run ${i + 1}`));
        else fulls.push(await fullOnce(`run ${i + 1}`));
      }
    }
    await exporter.close();
    await client.logout();
    const fullSec = median(fulls.map((f) => f.seconds));
    const project = bytes / MiB / fullSec;
    const reference = bytes / MiB / median(nbdcopyTimes);
    process.stdout.write(
      JSON.stringify({
        case: 'full-backup-dense',
        disk_MiB: sizeMiB,
        project_MiBps: Number(project.toFixed(1)),
        nbdcopy_MiBps: Number(reference.toFixed(1)),
        ratio: Number((project / reference).toFixed(3)),
        project_seconds: Number(fullSec.toFixed(2)),
        nbdcopy_seconds: Number(median(nbdcopyTimes).toFixed(2)),
        runs,
        measures: 'API POST /backup/start to job completed, vs nbdcopy from the same kind of snapshot export into a QCOW2 exported by the nbd-exporter',
      }) + '\n',
    );

    // Incrementals after 5% of the disk changed, each on the latest full/incremental.
    const incs: { seconds: number; row: Row; changed: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const areas = await standIn.harness!.fill(VM, deviceKey, 5, 100 + i);
      const changed = areas.reduce((s, a) => s + a.length, 0);
      const r = await timedBackup(sys, 'incremental');
      if (r.row.backup_type !== 'incremental') throw new Error(`expected an incremental, got ${r.row.backup_type}`);
      incs.push({ ...r, changed });
      log(`incremental run ${i + 1}: ${r.seconds.toFixed(2)} s, ${r.row.bytes_transferred} of ${changed} changed bytes`);
    }
    const fullAlloc = median(fulls.map((f) => f.row.allocated_bytes));
    process.stdout.write(
      JSON.stringify({
        case: 'incremental-5pct',
        disk_MiB: sizeMiB,
        changed_bytes: median(incs.map((x) => x.changed)),
        transferred_bytes: median(incs.map((x) => x.row.bytes_transferred)),
        transferred_over_changed: Number(median(incs.map((x) => x.row.bytes_transferred / x.changed)).toFixed(3)),
        incremental_seconds: Number(median(incs.map((x) => x.seconds)).toFixed(2)),
        time_fraction: Number((median(incs.map((x) => x.seconds)) / fullSec).toFixed(3)),
        size_fraction: Number((median(incs.map((x) => x.row.allocated_bytes)) / fullAlloc).toFixed(3)),
        transferred_fraction: Number((median(incs.map((x) => x.row.bytes_transferred)) / median(fulls.map((f) => f.row.bytes_transferred))).toFixed(3)),
        runs,
      }) + '\n',
    );
  } finally {
    await sys.stop();
    await standIn.stop();
    await rm(work, { recursive: true, force: true });
  }
}
