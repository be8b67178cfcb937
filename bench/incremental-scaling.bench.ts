/**
 * `npm run bench -- incremental-scaling --json [--size-mib 1024] [--pcts 1,5,20] [--runs 3]`
 *
 * How an incremental scales with the share of the disk the guest changed:
 * a dense disk gets a full, then for each share (1%, 5%, 20% of its 64 KiB
 * chunks rewritten by the stand-in's guest) incrementals chained on the
 * latest point. Per share: bytes transferred (and over the bytes changed),
 * time, image size and transferred bytes as fractions of the full's, phases.
 * Median of runs.
 */
import {
  MiB,
  emit,
  listFlag,
  logger,
  median,
  medianPhases,
  numFlag,
  phaseBreakdown,
  round,
  settle,
  startBenchSystem,
  timedBackup,
  type BackupRow,
} from './support';

const log = logger('incremental-scaling');
const VM = 'bench-incr';

export async function main(args: string[]): Promise<void> {
  const sizeMiB = numFlag(args, 'size-mib', 1024);
  const pcts = listFlag(args, 'pcts', [1, 5, 20]);
  const runs = numFlag(args, 'runs', 3);
  log(`${sizeMiB} MiB dense disk; ${pcts.join(', ')}% changed, ${runs} runs each`);
  const b = await startBenchSystem('incr', [{ name: VM, disks: [{ sizeMiB, content: { type: 'random', percent: 100, seed: 1 } }] }]);
  const { sys, standIn } = b;
  try {
    const deviceKey = (await standIn.harness!.vm(VM)).disks[0]!.key;
    await timedBackup(sys, VM, 'full'); // warm-up
    await settle();
    const full = await timedBackup(sys, VM, 'full');
    const fullRow = full.doc.backups[0] as BackupRow;
    log(`full: ${full.seconds.toFixed(2)} s, ${fullRow.bytes_transferred} bytes, ${fullRow.allocated_bytes} allocated`);
    let seed = 1000;
    for (const pct of pcts) {
      const xs: { seconds: number; row: BackupRow; changed: number; phases: Record<string, number> }[] = [];
      for (let i = 0; i < runs; i++) {
        const areas = await standIn.harness!.fill(VM, deviceKey, pct, seed++);
        const changed = areas.reduce((s, a) => s + a.length, 0);
        await settle(1000);
        const r = await timedBackup(sys, VM, 'incremental');
        const row = r.doc.backups[0] as BackupRow;
        if (row.backup_type !== 'incremental') throw new Error(`expected an incremental, got ${row.backup_type}`);
        xs.push({ seconds: r.seconds, row, changed, phases: phaseBreakdown(r.doc, Date.parse(r.doc.finished_at!) - r.seconds * 1000) });
        log(`${pct}% run ${i + 1}: ${r.seconds.toFixed(2)} s, ${row.bytes_transferred} transferred of ${changed} changed, ${row.allocated_bytes} allocated`);
      }
      const sec = median(xs.map((x) => x.seconds));
      emit('incremental-scaling', {
        case: `incremental-${pct}pct`,
        changed_pct: pct,
        disk_MiB: sizeMiB,
        changed_bytes: median(xs.map((x) => x.changed)),
        transferred_bytes: median(xs.map((x) => x.row.bytes_transferred)),
        transferred_over_changed: round(median(xs.map((x) => x.row.bytes_transferred / x.changed)), 3),
        seconds: round(sec, 2),
        full_seconds: round(full.seconds, 2),
        time_fraction: round(sec / full.seconds, 3),
        size_fraction: round(median(xs.map((x) => x.row.allocated_bytes)) / fullRow.allocated_bytes, 3),
        transferred_fraction: round(median(xs.map((x) => x.row.bytes_transferred)) / fullRow.bytes_transferred, 3),
        incremental_MiBps: round(median(xs.map((x) => x.row.bytes_transferred / MiB / x.seconds))),
        phases_s: medianPhases(xs.map((x) => x.phases)),
        runs,
      });
    }
  } finally {
    await b.stop();
  }
}
