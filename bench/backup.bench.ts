/**
 * `npm run bench -- backup --json [--size-mib 2048] [--runs 3] [--cases dense,half-sparse]`
 *
 * Full-backup throughput through the whole system (API call to job
 * completed: queue, worker, nbd-exporter's qemu-nbd target, Capture Agent,
 * stand-in snapshot over NBD, commit) against nbdcopy copying the same kind
 * of snapshot into the same kind of target (a fresh QCOW2 served writable by
 * the nbd-exporter) in the same run; the copy phase alone (the worker's
 * "copied in" event) against nbdcopy too; where the time goes (phases from
 * the job events); CPU seconds per GiB per service (/proc/<pid>/stat).
 * Then an incremental after the guest changed 5% of the disk, as fractions
 * of the full. Median of several runs each, after one unmeasured run of
 * each, alternating which goes first.
 * Cases: dense (random data everywhere), half-sparse (half of the 64 KiB
 * chunks hold data, chosen at random).
 * One JSON object per line on stdout; progress goes to stderr.
 */
import { join } from 'node:path';
import { targetTransport } from '@sendense/config';
import { NbdExporterClient } from '@sendense/contracts';
import { run } from '@sendense/process';
import { VSphereClient } from '@sendense/vsphere';
import {
  CpuMeter,
  MiB,
  cpuPerGiB,
  deleteBackup,
  emit,
  flag,
  logger,
  median,
  medianCpu,
  medianPhases,
  numFlag,
  phaseBreakdown,
  productCpuGroups,
  round,
  settle,
  startBenchSystem,
  timedBackup,
  type Bench,
  type BackupRow,
} from './support';

const log = logger('backup');

async function benchCase(name: string, percent: number, sizeMiB: number, runs: number, withIncremental: boolean): Promise<void> {
  const VM = `bench-${name}`;
  log(`${name}: ${sizeMiB} MiB disk, ${percent}% data, ${runs} runs each`);
  const b: Bench = await startBenchSystem('backup', [{ name: VM, disks: [{ sizeMiB, content: { type: 'random', percent, seed: 1 } }] }]);
  const { sys, standIn } = b;
  try {
    const vm = await standIn.harness!.vm(VM);
    const deviceKey = vm.disks[0]!.key;
    const bytes = sizeMiB * MiB;
    const cpu = new CpuMeter(productCpuGroups(sys, standIn));

    // nbdcopy: the same snapshot path (vCenter snapshot → stand-in NBD export)
    // into the same kind of target: a fresh QCOW2 exported writable by the
    // system's own nbd-exporter (same qemu-nbd options), flushed at the end.
    const client = await VSphereClient.connect({
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      tls: { insecure: true },
      keepAliveMs: 0,
    });
    const exporter = NbdExporterClient.connect({ url: sys.env['NBD_EXPORTER_URL'], token: sys.env['SENDENSE_INTERNAL_TOKEN'] });
    const nbdcopyOnce = async (label: string, transport: 'tcp' | 'unix') => {
      const snap = await client.createSnapshot({ type: 'VirtualMachine', value: vm.moref }, { name: `bench-${label}` });
      const loc = await standIn.harness!.snapshotNbd(VM, snap.value, deviceKey);
      const target = join(sys.dir, `nbdcopy-${label.replace(/\W+/g, '-')}.qcow2`);
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', target, String(bytes)]);
      const exp = await exporter.createExport({ vmContextId: 'bench', diskId: 0, type: 'nbdcopy', kind: 'qcow2', filePath: target, writable: true, transport });
      await cpu.start();
      const t0 = process.hrtime.bigint();
      await run('nbdcopy', ['--destination-is-zero', '--flush', loc.uri, exp.uri], { timeoutMs: 900_000 });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const use = await cpu.stop();
      await exporter.removeExport(exp.name);
      await client.removeSnapshot(snap);
      await run('rm', ['-f', target]);
      log(`nbdcopy ${label} (${transport} target): ${seconds.toFixed(2)} s`);
      const groups = {
        nbdcopy: use.groups['children-of-bench']!,
        'qemu-nbd (target)': use.groups['qemu-nbd (target)']!,
        'stand-in (source)': use.groups['stand-in (source)']!,
      };
      return { seconds, groups };
    };
    // The system: full backups through the API. Only the latest full is
    // kept, as nbdcopy's target is removed after each run: both sides then
    // write into recycled page cache rather than one of them into memory
    // the machine never touched before (slow on a fresh VM).
    let latestFull: string | undefined;
    const fullOnce = async (label: string) => {
      await cpu.start();
      const r = await timedBackup(sys, VM, 'full');
      const use = await cpu.stop();
      delete use.groups['children-of-bench'];
      if (latestFull) await deleteBackup(sys, latestFull);
      const row = r.doc.backups[0] as BackupRow;
      latestFull = row.id;
      const phases = phaseBreakdown(r.doc, Date.parse(r.doc.finished_at!) - r.seconds * 1000);
      log(`full backup ${label}: ${r.seconds.toFixed(2)} s, ${row.bytes_transferred} bytes; ${JSON.stringify(phases)}`);
      return { seconds: r.seconds, row, phases, cpu: cpuPerGiB(use.groups, row.bytes_transferred) };
    };
    // The product's own transport (NBD_TARGET_TRANSPORT as the worker resolves it) and the other one.
    const transport = targetTransport({ NBD_TARGET_TRANSPORT: 'auto', ...sys.env } as Parameters<typeof targetTransport>[0]);
    const other = transport === 'unix' ? 'tcp' : 'unix';
    await nbdcopyOnce('warm-up', transport);
    await fullOnce('warm-up');
    const ref: Awaited<ReturnType<typeof nbdcopyOnce>>[] = [];
    const refOther: Awaited<ReturnType<typeof nbdcopyOnce>>[] = [];
    const fulls: Awaited<ReturnType<typeof fullOnce>>[] = [];
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? ['nbdcopy', 'project', 'other'] : ['project', 'other', 'nbdcopy'];
      for (const who of order) {
        await settle();
        if (who === 'nbdcopy') ref.push(await nbdcopyOnce(`run ${i + 1}`, transport));
        else if (who === 'other') refOther.push(await nbdcopyOnce(`run ${i + 1}`, other));
        else fulls.push(await fullOnce(`run ${i + 1}`));
      }
    }
    await exporter.close();
    await client.logout();
    const fullSec = median(fulls.map((f) => f.seconds));
    const refSec = median(ref.map((x) => x.seconds));
    const otherSec = median(refOther.map((x) => x.seconds));
    const phases = medianPhases(fulls.map((f) => f.phases));
    const copySec = phases['copy_s'] as number;
    const moved = median(fulls.map((f) => f.row.bytes_transferred));
    emit('backup', {
      case: `full-backup-${name}`,
      disk_MiB: sizeMiB,
      data_MiB: round(moved / MiB, 0),
      project_MiBps: round(bytes / MiB / fullSec),
      nbdcopy_MiBps: round(bytes / MiB / refSec),
      ratio: round(refSec / fullSec, 3),
      copy_ratio: round(refSec / copySec, 3),
      target_transport: transport,
      [`nbdcopy_${other}_target_MiBps`]: round(bytes / MiB / otherSec),
      [`ratio_vs_nbdcopy_${other}_target`]: round(otherSec / fullSec, 3),
      project_seconds: round(fullSec, 2),
      nbdcopy_seconds: round(refSec, 2),
      phases_s: phases,
      cpu_s_per_GiB: medianCpu(fulls.map((f) => f.cpu)),
      // Per GiB of data moved, as the project's (nbdcopy skips the same holes).
      nbdcopy_cpu_s_per_GiB: medianCpu(ref.map((x) => cpuPerGiB(x.groups, moved))),
      project_runs_s: fulls.map((f) => round(f.seconds, 2)),
      nbdcopy_runs_s: ref.map((x) => round(x.seconds, 2)),
      [`nbdcopy_${other}_target_runs_s`]: refOther.map((x) => round(x.seconds, 2)),
      runs,
      measures:
        'ratio: API POST /backup/start to job completed vs nbdcopy --flush from the same kind of snapshot export into a QCOW2 exported by the nbd-exporter over the transport the product used (target_transport); copy_ratio: the copy phase alone vs the same nbdcopy; ratio_vs_nbdcopy_<other>_target: the backup vs nbdcopy into the other transport; MiB/s over the virtual size',
    });

    if (!withIncremental) return;
    // Incrementals after 5% of the disk changed, each on the latest full/incremental.
    const incs: { seconds: number; row: BackupRow; changed: number; phases: Record<string, number> }[] = [];
    for (let i = 0; i < runs; i++) {
      const areas = await standIn.harness!.fill(VM, deviceKey, 5, 100 + i);
      const changed = areas.reduce((s, a) => s + a.length, 0);
      const r = await timedBackup(sys, VM, 'incremental');
      const row = r.doc.backups[0] as BackupRow;
      if (row.backup_type !== 'incremental') throw new Error(`expected an incremental, got ${row.backup_type}`);
      incs.push({ seconds: r.seconds, row, changed, phases: phaseBreakdown(r.doc, Date.parse(r.doc.finished_at!) - r.seconds * 1000) });
      log(`incremental run ${i + 1}: ${r.seconds.toFixed(2)} s, ${row.bytes_transferred} of ${changed} changed bytes`);
    }
    const fullAlloc = median(fulls.map((f) => f.row.allocated_bytes));
    emit('backup', {
      case: `incremental-5pct-${name}`,
      disk_MiB: sizeMiB,
      changed_bytes: median(incs.map((x) => x.changed)),
      transferred_bytes: median(incs.map((x) => x.row.bytes_transferred)),
      transferred_over_changed: round(median(incs.map((x) => x.row.bytes_transferred / x.changed)), 3),
      incremental_seconds: round(median(incs.map((x) => x.seconds)), 2),
      time_fraction: round(median(incs.map((x) => x.seconds)) / fullSec, 3),
      size_fraction: round(median(incs.map((x) => x.row.allocated_bytes)) / fullAlloc, 3),
      transferred_fraction: round(median(incs.map((x) => x.row.bytes_transferred)) / moved, 3),
      phases_s: medianPhases(incs.map((x) => x.phases)),
      runs,
    });
  } finally {
    await b.stop();
  }
}

export async function main(args: string[]): Promise<void> {
  const sizeMiB = numFlag(args, 'size-mib', 2048);
  const runs = numFlag(args, 'runs', 3);
  const cases = (flag(args, 'cases') ?? 'dense,half-sparse').split(',');
  for (const c of cases) {
    if (c === 'dense') await benchCase('dense', 100, sizeMiB, runs, true);
    else if (c === 'half-sparse') await benchCase('half-sparse', 50, sizeMiB, runs, false);
    else throw new Error(`unknown case ${c} (dense, half-sparse)`);
  }
}
