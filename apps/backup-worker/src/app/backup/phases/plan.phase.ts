import type { PreparedDisk } from '@sendense/contracts';
import { FULL_REASON_TEXT, fullReasonText, resizedReason, type BackupDeps, type BackupRun, type DiskPlan } from '../run-context';

/** Phase 2: what each prepared disk becomes (an incremental on its base, or a full and why), in the order the agent prepared them. */
export async function planDisks(d: BackupDeps, run: BackupRun, disks: readonly PreparedDisk[]): Promise<void> {
  for (const p of disks) run.plans.push(await planDisk(d, run, p));
}

async function planDisk(d: BackupDeps, run: BackupRun, p: PreparedDisk): Promise<DiskPlan> {
  const known = run.ctx.disks;
  let disk = known.find((k) => k.deviceKey === p.deviceKey);
  // Checked before a new disk is added (its row has the prepared size).
  const resized = resizedReason(disk, p);
  if (!disk) {
    // A disk added to the VM since the last backup.
    disk = await d.disks.add(run.ctx.contextId, { deviceKey: p.deviceKey, label: p.label, capacityBytes: p.capacityBytes, fileName: p.fileName });
    known.push(disk);
  }
  const base = run.bases.get(p.deviceKey) ?? { parentId: null, previousChangeId: null, reason: 'the disk is new' };
  if (resized && p.mode === 'incremental') {
    // SnapshotSession.open prepares a resized disk again as a full; an incremental here would lose data.
    throw new Error(`internal error: disk ${disk.diskIndex} of ${run.vm} was resized but the Capture Agent prepared it as an incremental`);
  }
  if (p.mode === 'incremental' && base.parentId) {
    return { prepared: p, disk, type: run.data.requestedType, parentId: base.parentId, fallbackReason: null, previousChangeId: base.previousChangeId };
  }
  const reason =
    run.data.requestedType === 'full'
      ? null
      : resized
        ? // A resize wins over the agent's reason: vCenter refusing the old changeId is its consequence.
          resized
        : p.fullReason && p.fullReason !== 'no-previous-change-id' && p.fullReason !== 'requested'
          ? `${fullReasonText(p.fullReason) ?? p.fullReason}${p.fullReasonDetail ? ` (${p.fullReasonDetail})` : ''}`
          : (base.reason ?? FULL_REASON_TEXT['no-previous-change-id']);
  return { prepared: p, disk, type: 'full', parentId: null, fallbackReason: reason, previousChangeId: null };
}
