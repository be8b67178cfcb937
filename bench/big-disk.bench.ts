/**
 * `npm run bench -- big-disk --json [--small-gib 20] [--big-gib 2049] [--changed-mib 100]
 *                                   [--written-mib 256] [--runs 3] [--cbt-window-gib 64]`
 *
 * Does anything that should scale with written data scale with virtual size?
 * Two sparse disks, 20 GiB and just over 2 TiB virtual, the same data written
 * on each (1 MiB pieces spread evenly over the whole disk): a full of each,
 * then incrementals after the guest changed the same number of MiB (again
 * spread over the whole disk, so change-tracking pages and QCOW2 metadata
 * all over the disk are touched). Per disk: full and incremental time, peak
 * RSS of each service during the incremental, and the big/small ratios
 * (goal: incremental time and memory within 2x). Finally every piece ever
 * written is read back from the last restore point's chain (qemu-nbd
 * read-only over the chain) and compared byte for byte.
 *
 * The stand-in answers QueryChangedDiskAreas in windows of --cbt-window-gib
 * (the product pages through them to the end of the disk); its own cost per
 * answer is a scan of its bitmap, so a 16 MiB window (its default) on 2 TiB
 * would measure the stand-in, not the product. The pages are reported.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { NbdClient } from '@sendense/nbd';
import { Daemon, waitFor } from '@sendense/process';
import {
  GiB,
  MiB,
  RssMeter,
  emit,
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

const log = logger('big-disk');

export async function main(args: string[]): Promise<void> {
  const smallGiB = numFlag(args, 'small-gib', 20);
  const bigGiB = numFlag(args, 'big-gib', 2049);
  const changedMiB = numFlag(args, 'changed-mib', 100);
  const writtenMiB = numFlag(args, 'written-mib', 256);
  const runs = numFlag(args, 'runs', 3);
  const windowGiB = numFlag(args, 'cbt-window-gib', 64);
  const disks = [
    { vm: 'bench-small', gib: smallGiB },
    { vm: 'bench-big', gib: bigGiB },
  ];
  log(
    `${disks.map((d) => `${d.gib} GiB`).join(' vs ')}; ${writtenMiB} MiB written, ${changedMiB} MiB changed per incremental, ${runs} runs, CBT window ${windowGiB} GiB`,
  );
  const b = await startBenchSystem(
    'bigdisk',
    disks.map((d) => ({ name: d.vm, disks: [{ sizeMiB: d.gib * 1024, content: { type: 'empty' as const } }] })),
    { cbtWindowBytes: windowGiB * GiB },
  );
  const { sys, standIn } = b;
  const services = ['capture-agent', 'backup-worker', 'nbd-exporter', 'api-gateway'];
  try {
    const out: Record<string, unknown>[] = [];
    const byDisk: { full_s: number; incr_s: number; rss: Record<string, number>; transferred: number; phases: Record<string, number> }[] = [];
    for (const d of disks) {
      const size = d.gib * GiB;
      const key = (await standIn.harness!.vm(d.vm)).disks[0]!.key;
      const written = new Map<number, Buffer>();
      /** n pieces of 1 MiB spread over the disk; set j shifts them by j MiB so sets never overlap. */
      const writeSet = async (n: number, j: number) => {
        const stride = Math.floor(size / n / MiB) * MiB;
        for (let i = 0; i < n; i++) {
          const off = i * stride + j * MiB;
          const buf = randomBytes(MiB);
          await standIn.harness!.write(d.vm, key, off, buf);
          written.set(off, buf);
        }
      };
      await writeSet(writtenMiB, 0);
      await settle(1000);
      const full = await timedBackup(sys, d.vm, 'full');
      const fullRow = full.doc.backups[0] as BackupRow;
      log(`${d.gib} GiB full: ${full.seconds.toFixed(2)} s, ${fullRow.bytes_transferred} bytes`);
      const incs: { seconds: number; rss: Record<string, number>; row: BackupRow; phases: Record<string, number> }[] = [];
      for (let r = 0; r < runs; r++) {
        await writeSet(changedMiB, r + 1);
        await settle(1000);
        const pids = () => services.map((s) => sys.daemons.get(s)?.pid).filter((p): p is number => !!p);
        const rss = new RssMeter(pids);
        rss.start();
        const inc = await timedBackup(sys, d.vm, 'incremental');
        const peak = rss.stop();
        const row = inc.doc.backups[0] as BackupRow;
        if (row.backup_type !== 'incremental') throw new Error(`${d.vm}: expected an incremental, got ${row.backup_type}`);
        const bySvc = Object.fromEntries(services.map((s) => [s, round(peak.get(sys.daemons.get(s)?.pid ?? -1) ?? 0, 0)]));
        incs.push({ seconds: inc.seconds, rss: bySvc, row, phases: phaseBreakdown(inc.doc, Date.parse(inc.doc.finished_at!) - inc.seconds * 1000) });
        log(`${d.gib} GiB incremental ${r + 1}: ${inc.seconds.toFixed(2)} s, ${row.bytes_transferred} bytes, rss ${JSON.stringify(bySvc)}`);
      }
      // Read back every piece from the last point's chain.
      const last = incs[incs.length - 1]!.row;
      const sock = join(b.work, `${d.vm}.sock`);
      rmSync(sock, { force: true });
      const nbd = await Daemon.start('qemu-nbd', ['-r', '-f', 'qcow2', '--persistent', '-k', sock, join(sys.repoDir, last.repository_path)]);
      let bad = 0;
      try {
        await waitFor(() => existsSync(sock), { timeoutMs: 10_000, message: sock });
        const c = await NbdClient.connect({ uri: `nbd+unix:///?socket=${sock}` });
        try {
          if (c.size !== size) throw new Error(`${d.vm}: restore point is ${c.size} bytes, the disk ${size}`);
          for (const [off, buf] of written) if (!(await c.read(off, buf.length)).equals(buf)) bad++;
        } finally {
          await c.close();
        }
      } finally {
        await nbd.stop();
      }
      if (bad) throw new Error(`${d.vm}: ${bad} of ${written.size} written pieces read back wrong from ${last.id}`);
      log(`${d.gib} GiB: all ${written.size} pieces read back from ${last.id}`);
      const rssMed = Object.fromEntries(services.map((s) => [s, round(median(incs.map((x) => x.rss[s] ?? 0)), 0)]));
      const row = {
        case: `big-disk-${d.gib}gib`,
        virtual_GiB: d.gib,
        written_MiB: writtenMiB,
        changed_MiB: changedMiB,
        full_seconds: round(full.seconds, 2),
        full_transferred_bytes: fullRow.bytes_transferred,
        incremental_seconds: round(median(incs.map((x) => x.seconds)), 2),
        incremental_transferred_bytes: median(incs.map((x) => x.row.bytes_transferred)),
        incremental_allocated_bytes: median(incs.map((x) => x.row.allocated_bytes)),
        incremental_phases_s: medianPhases(incs.map((x) => x.phases)),
        peak_rss_MiB: rssMed,
        cbt_pages: Math.ceil(size / (windowGiB * GiB)),
        read_back: `${written.size} pieces ok`,
        runs,
      };
      byDisk.push({
        full_s: full.seconds,
        incr_s: row.incremental_seconds,
        rss: rssMed,
        transferred: row.incremental_transferred_bytes,
        phases: row.incremental_phases_s,
      });
      out.push(row);
    }
    for (const row of out) emit('big-disk', row);
    const [s, g] = byDisk as [(typeof byDisk)[number], (typeof byDisk)[number]];
    emit('big-disk', {
      case: 'big-disk-ratio',
      small_GiB: smallGiB,
      big_GiB: bigGiB,
      incremental_time_ratio: round(g.incr_s / s.incr_s, 3),
      incremental_rss_ratio: Object.fromEntries(services.map((k) => [k, round((g.rss[k] ?? 0) / (s.rss[k] || 1), 3)])),
      full_time_ratio: round(g.full_s / s.full_s, 3),
      goal: 'incremental time and memory of the big disk within 2x of the small one',
      ok: g.incr_s / s.incr_s <= 2 && services.every((k) => (g.rss[k] ?? 0) <= 2 * (s.rss[k] || 1)),
    });
  } finally {
    await b.stop();
  }
}
