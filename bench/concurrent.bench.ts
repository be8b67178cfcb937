/**
 * `npm run bench -- concurrent --json [--vms 1,2,5] [--disk-mib 512] [--disks 1] [--runs 3]`
 *
 * Several VMs backed up at once, as an operator would: N full backups
 * started through the API at the same moment; aggregate MiB/s = all bytes
 * of all disks / (first API call to the last job completed), against the
 * same bench's one-VM figure in the same run (`ratio_to_one_vm`). Also CPU
 * seconds per GiB per service, where the time went for the slowest VM,
 * and what the services' settings were (BACKUP_CONCURRENCY,
 * CAPTURE_DISK_PARALLELISM, as the system under test runs them).
 * Restore points are deleted after each round. Median of runs.
 */
import { loadWorkerSettings, loadCaptureAgentSettings } from '@sendense/config';
import {
  CpuMeter,
  MiB,
  cpuPerGiB,
  deleteBackup,
  emit,
  finishBackup,
  listFlag,
  logger,
  median,
  medianCpu,
  numFlag,
  phaseBreakdown,
  productCpuGroups,
  round,
  settle,
  startBackup,
  startBenchSystem,
} from './support';

const log = logger('concurrent');

export async function main(args: string[]): Promise<void> {
  const counts = listFlag(args, 'vms', [1, 2, 5]);
  const diskMiB = numFlag(args, 'disk-mib', 512);
  const disks = numFlag(args, 'disks', 1);
  const runs = numFlag(args, 'runs', 3);
  if (!counts.includes(1)) counts.unshift(1);
  const max = Math.max(...counts);
  const names = Array.from({ length: max }, (_, i) => `bench-vm-${i + 1}`);
  log(`${max} VMs x ${disks} disk(s) of ${diskMiB} MiB dense; rounds of ${counts.join(', ')} VMs, ${runs} runs each`);
  const b = await startBenchSystem(
    'concurrent',
    names.map((name, i) => ({
      name,
      disks: Array.from({ length: disks }, (_, d) => ({ sizeMiB: diskMiB, content: { type: 'random' as const, percent: 100, seed: 10 * i + d + 1 } })),
    })),
  );
  const { sys } = b;
  try {
    const worker = loadWorkerSettings({ ...sys.env });
    const agent = loadCaptureAgentSettings({ ...sys.env });
    const cpu = new CpuMeter(productCpuGroups(sys, b.standIn));
    const round1 = async (n: number, label: string) => {
      const vms = names.slice(0, n);
      await cpu.start();
      const started = await Promise.all(vms.map((vm) => startBackup(sys, vm, 'full')));
      const done = await Promise.all(started.map((s, i) => finishBackup(sys, s, vms[i])));
      const use = await cpu.stop();
      delete use.groups['children-of-bench'];
      const t0 = Math.min(...started.map((s) => s.t0));
      const end = Math.max(...done.map((d) => d.finishedAt));
      const bytes = done.flatMap((d) => d.doc.backups).reduce((s, r) => s + r.bytes_transferred, 0);
      const seconds = (end - t0) / 1000;
      const slowest = done.reduce((a, c) => (c.finishedAt > a.finishedAt ? c : a));
      const phases = phaseBreakdown(slowest.doc, started[done.indexOf(slowest)]!.t0);
      for (const d of done) for (const r of d.doc.backups) await deleteBackup(sys, r.id);
      log(`${n} VM(s) ${label}: ${bytes} bytes in ${seconds.toFixed(2)} s = ${(bytes / MiB / seconds).toFixed(0)} MiB/s; slowest ${JSON.stringify(phases)}`);
      return { mibps: bytes / MiB / seconds, seconds, bytes, cpu: cpuPerGiB(use.groups, bytes), phases };
    };
    await round1(1, 'warm-up');
    const results = new Map<number, Awaited<ReturnType<typeof round1>>[]>();
    for (let r = 0; r < runs; r++) {
      // Alternate the order of the rounds so drift on the host hits all alike.
      for (const n of r % 2 === 0 ? counts : [...counts].reverse()) {
        await settle();
        const x = await round1(n, `run ${r + 1}`);
        results.set(n, [...(results.get(n) ?? []), x]);
      }
    }
    const one = median((results.get(1) ?? []).map((x) => x.mibps));
    for (const n of counts) {
      const xs = results.get(n) ?? [];
      const agg = median(xs.map((x) => x.mibps));
      emit('concurrent', {
        case: `concurrent-${n}`,
        vms: n,
        disks_per_vm: disks,
        disk_MiB: diskMiB,
        aggregate_MiBps: round(agg),
        one_vm_MiBps: round(one),
        ratio_to_one_vm: round(agg / one, 3),
        seconds: round(median(xs.map((x) => x.seconds)), 2),
        runs_MiBps: xs.map((x) => round(x.mibps)),
        slowest_vm_phases_s: Object.fromEntries(Object.keys(xs[0]?.phases ?? {}).map((k) => [k, round(median(xs.map((x) => x.phases[k] ?? NaN)), 2)])),
        cpu_s_per_GiB: medianCpu(xs.map((x) => x.cpu)),
        backup_concurrency: worker.BACKUP_CONCURRENCY,
        capture_disk_parallelism: agent.CAPTURE_DISK_PARALLELISM,
        runs,
        measures: 'N full backups started at once through the API; all bytes / (first API call to last job completed)',
      });
    }
  } finally {
    await b.stop();
  }
}
