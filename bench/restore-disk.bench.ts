/**
 * restore-disk: writing a restore point back into a VM's disk, full write and
 * quick rollback, against nbdcopy writing the same image into the same target
 * (the stand-in's live disk export), in the same run.
 *
 *   npm run bench -- restore-disk --json [--runs 3] [--size-mib 512] [--percent 50] [--changed 5]
 *
 * Setup: a stand-in VM with one disk (`--percent` of it random data, CBT on),
 * a full backup of it through the Capture Agent's own prepare/copy into a
 * QCOW2 served by qemu-nbd (the restore point), the VM powered off.
 * quick runs first (a whole-disk write is itself a change CBT records, after
 * which everything "changed since the restore point"): per run the guest
 * changes `--changed` % more of the disk (harness fill), then mode quick
 * writes back what QueryChangedDiskAreas says changed since the restore
 * point (the union of the runs' changes so far).
 * Then full runs, alternating who goes first with the reference:
 *   full     DiskRestoreService mode full (allocated extents, rest zeroed)
 *   nbdcopy  `nbdcopy --flush <restore point> <live disk>` (the whole image);
 *            both modes' ratio_to_nbdcopy is against its median
 * MiB/s is the disk's size over the wall time (what an operator waits for);
 * quick also reports the bytes it wrote. Every run is checked: the live disk
 * must read back equal to the restore point (qemu-img compare).
 * stdout: one JSON line per mode (with --json); progress on stderr.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { run } from '@sendense/process';
import { startStandIn, VSphereClient, type HarnessClient } from '@sendense/vsphere';
import { CaptureService } from '../apps/capture-agent/src/app/capture.service';
import { DiskRestoreService } from '../apps/capture-agent/src/app/disk-restore.service';
import { qcow2Target } from '../apps/capture-agent/src/testing/targets';
import { emit, flag, logger, median, MiB, numFlag, round } from './support';

const log = logger('restore-disk');

export async function main(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const runs = numFlag(args, 'runs', 3);
  const sizeMiB = numFlag(args, 'size-mib', 512);
  const percent = numFlag(args, 'percent', 50);
  const changed = numFlag(args, 'changed', 5);
  const dir = mkdtempSync(join(flag(args, 'dir') ?? '/var/tmp', 'sendense-bench-restore-disk-'));
  Logger.overrideLogger(['error']);
  const standIn = await startStandIn({
    stateDir: join(dir, 'standin'),
    vms: [{ name: 'bench-vm', changeTrackingEnabled: true, disks: [{ sizeMiB, content: { type: 'random', percent, seed: 11 } }] }],
  });
  const harness = standIn.harness as HarnessClient;
  const vcenter = { url: standIn.url, username: standIn.username, password: standIn.password, thumbprint: standIn.thumbprint };
  const vc = await VSphereClient.connect({ url: standIn.url, username: standIn.username, password: standIn.password, tls: { thumbprint: standIn.thumbprint } });
  const capture = new CaptureService({ diskParallelism: 1, allowEnableCbt: true });
  const restores = new DiskRestoreService();
  const size = sizeMiB * MiB;
  try {
    log(`backing up a ${sizeMiB} MiB disk (${percent}% data)`);
    const prep = await capture.prepare({
      runId: 'bench',
      vcenter,
      vm: { name: 'bench-vm' },
      disks: [],
      allowEnableCbt: true,
      reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl as string },
    });
    const key = prep.disks[0]!.deviceKey;
    const changeId = prep.disks[0]!.changeId;
    const point = await qcow2Target(dir, 'point', size);
    await capture.copy({ sessionId: prep.sessionId, targets: [{ deviceKey: key, uri: point.uri }] });
    await capture.release(prep.sessionId);
    const vm = await vc.findVm({ name: 'bench-vm' });
    await vc.powerOff(vm.ref);
    const live = (await harness.vm('bench-vm')).disks.find((d) => d.key === key)!.liveUri;
    const writer = { kind: 'standin-nbd' as const, harnessUrl: standIn.harnessUrl as string };
    const check = async (what: string) => {
      const r = await run('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', 'raw', point.file, live], { okExitCodes: [0, 1] });
      if (r.exitCode !== 0) throw new Error(`${what}: the disk does not read back as the restore point: ${r.stdout.trim()}`);
    };
    const timed = async (fn: () => Promise<unknown>) => {
      const t0 = process.hrtime.bigint();
      await fn();
      return Number(process.hrtime.bigint() - t0) / 1e9;
    };
    const nbdcopy = () => timed(() => run('nbdcopy', ['--flush', point.uri, live], { timeoutMs: 600_000 }));

    const restore = async (mode: 'full' | 'quick', id: string) => {
      let bytes = 0;
      const s = await timed(async () => {
        const r = await restores.restore({ restoreId: id, vcenter, vm: { name: 'bench-vm' }, deviceKey: key, sourceUri: point.uri, mode, changeId, writer });
        if (r.mode !== mode) throw new Error(`${mode} restore ran as ${r.mode}: ${r.fallbackDetail ?? ''}`);
        bytes = r.bytesWritten + r.bytesZeroed;
      });
      await check(`${mode} restore ${id}`);
      return { s, bytes };
    };

    // Quick first: any whole-disk write (a full restore, nbdcopy) is itself a change CBT
    // records, after which "changed since the restore point" is the whole disk.
    // Each run adds --changed % more guest changes; CBT answers their union since the restore point.
    const GRAIN = 64 * 1024;
    const grains = new Set<number>();
    const quick: { s: number; bytes: number; changed: number }[] = [];
    for (let i = 0; i < runs; i++) {
      for (const a of await harness.fill('bench-vm', key, changed, 1000 + i)) {
        for (let g = Math.floor(a.start / GRAIN); g * GRAIN < a.start + a.length; g++) grains.add(g);
      }
      const r = await restore('quick', `bench-quick-${i}`);
      quick.push({ ...r, changed: grains.size * GRAIN });
      log(`quick run ${i + 1}/${runs}: ${r.s.toFixed(2)} s, wrote ${r.bytes} bytes, guest changed ${grains.size * GRAIN} since the restore point`);
    }

    const full: number[] = [];
    const fullBytes: number[] = [];
    const ref: number[] = [];
    for (let i = 0; i < runs; i++) {
      const ours = async () => {
        const r = await restore('full', `bench-full-${i}`);
        full.push(r.s);
        fullBytes.push(r.bytes);
      };
      const theirs = async () => {
        ref.push(await nbdcopy());
        await check(`nbdcopy run ${i}`);
      };
      if (i % 2 === 0) {
        await ours();
        await theirs();
      } else {
        await theirs();
        await ours();
      }
      log(`full run ${i + 1}/${runs}: ours ${full.at(-1)?.toFixed(2)} s, nbdcopy ${ref.at(-1)?.toFixed(2)} s`);
    }
    const refS = median(ref);
    const common = { disk_mib: sizeMiB, data_percent: percent, runs, nbdcopy_seconds: round(refS, 3), nbdcopy_mib_per_s: round(sizeMiB / refS) };
    const fullS = median(full);
    const quickS = median(quick.map((q) => q.s));
    const docs: Record<string, unknown>[] = [
      {
        mode: 'full',
        ...common,
        seconds: round(fullS, 3),
        mib_per_s: round(sizeMiB / fullS),
        ratio_to_nbdcopy: round(refS / fullS, 2),
        bytes_written: median(fullBytes),
      },
      {
        mode: 'quick',
        ...common,
        seconds: round(quickS, 3),
        mib_per_s: round(sizeMiB / quickS),
        ratio_to_nbdcopy: round(refS / quickS, 2),
        changed_percent_per_run: changed,
        bytes_written: median(quick.map((q) => q.bytes)),
        guest_changed_bytes: median(quick.map((q) => q.changed)),
      },
    ];
    for (const doc of docs) {
      if (json) emit('restore-disk', doc);
      else log(JSON.stringify(doc));
    }
    await point.stop();
  } finally {
    await vc.logout().catch(() => undefined);
    await standIn.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
