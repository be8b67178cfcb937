import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { chainOf } from './chain-manager';
import { recoverDir, type ConsolidationOptions } from './consolidation';
import { scanDiskDir } from './disk-dir';
import { ChainBroken } from './errors';
import { fsyncDir, removeIfExists } from './fs-util';
import { MERGE_TMP_SUFFIX, QUARANTINE_DIR, diskDirName, relName } from './layout';
import type { FileLockRegistry } from './locks';
import type { ReconcileEntry } from './repository';

/** Sidecar temp files younger than this may belong to a writer right now. */
const TEMP_GRACE_MS = 60_000;

/**
 * Sort out one disk directory after crashes:
 *  - an interrupted consolidation is rolled back or forward (journal);
 *  - a restore point left "writing" by a dead writer is deleted (its data is
 *    incomplete by definition, and it was never visible);
 *  - images without sidecars, sidecars without images and unreadable
 *    sidecars are moved to <root>/.quarantine/ (never deleted: an operator
 *    may still want them);
 *  - temp files of dead writers are deleted;
 *  - committed restore points whose chain is broken are reported.
 */
export async function reconcileDisk(
  root: string,
  d: { vmContextId: string; diskIndex: number; dir: string },
  locks: FileLockRegistry,
  opts: ConsolidationOptions & { dryRun?: boolean },
): Promise<ReconcileEntry[]> {
  const entries: ReconcileEntry[] = [];
  const dry = !!opts.dryRun;
  const entry = (e: Omit<ReconcileEntry, 'vmContextId' | 'diskIndex'>) =>
    entries.push({ vmContextId: d.vmContextId, diskIndex: d.diskIndex, ...e, name: relName(d.vmContextId, d.diskIndex, e.name) });

  const outcome = await recoverDir(d.dir, { ...opts, dryRun: dry });
  if (outcome) {
    entry({
      finding: 'consolidation-journal',
      action: outcome,
      restorePointId: null,
      name: '.consolidation.journal.json',
      reason: outcome === 'skipped-busy' ? 'a consolidation is running in another process' : 'an interrupted consolidation was found',
    });
    if (outcome === 'skipped-busy' || outcome === 'would-recover') return entries;
  }

  const scan = await scanDiskDir(d.dir, d.vmContextId, d.diskIndex);
  const quarantine = async (name: string) => {
    const qdir = path.join(root, QUARANTINE_DIR, d.vmContextId, diskDirName(d.diskIndex));
    await fsp.mkdir(qdir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[-:.]/g, '');
    await fsp.rename(path.join(d.dir, name), path.join(qdir, `${name}.${stamp}`));
  };

  for (const name of scan.tempFiles) {
    if (!name.endsWith('.tmp')) {
      entry({ finding: 'temp-file', action: 'reported', restorePointId: null, name, reason: 'unknown file in a disk directory' });
      continue;
    }
    const st = await fsp.stat(path.join(d.dir, name)).catch(() => null);
    const isMerge = name.endsWith(MERGE_TMP_SUFFIX); // no journal any more: its consolidation is dead
    if (!st || (!isMerge && Date.now() - st.mtimeMs < TEMP_GRACE_MS)) continue;
    if (!dry) await removeIfExists(path.join(d.dir, name));
    entry({ finding: 'temp-file', action: dry ? 'would-delete' : 'deleted', restorePointId: null, name, reason: 'temp file of an interrupted write' });
  }

  for (const l of scan.located) {
    const r = l.record;
    if (r.state === 'writing') {
      if (await locks.isBusy(r.id)) {
        entry({ finding: 'half-written', action: 'skipped-busy', restorePointId: r.id, name: r.imageName, reason: 'a writer is still active' });
        continue;
      }
      if (!dry) {
        await removeIfExists(path.join(d.dir, r.imageName));
        await removeIfExists(path.join(d.dir, l.sidecarName));
      }
      entry({
        finding: 'half-written',
        action: dry ? 'would-delete' : 'deleted',
        restorePointId: r.id,
        name: r.imageName,
        reason: 'restore point was never committed and its writer is gone',
      });
    } else if (!l.imageExists) {
      if (!dry) await quarantine(l.sidecarName);
      entry({
        finding: 'sidecar-without-image',
        action: dry ? 'would-quarantine' : 'quarantined',
        restorePointId: r.id,
        name: l.sidecarName,
        reason: 'the image of this restore point is missing; it is no longer a restore point',
      });
    }
  }
  for (const name of scan.loneImages) {
    if (!dry) await quarantine(name);
    entry({ finding: 'image-without-sidecar', action: dry ? 'would-quarantine' : 'quarantined', restorePointId: null, name, reason: 'image has no sidecar' });
  }
  for (const name of scan.badSidecars) {
    if (!dry) await quarantine(name);
    entry({ finding: 'sidecar-without-image', action: dry ? 'would-quarantine' : 'quarantined', restorePointId: null, name, reason: 'sidecar cannot be read' });
  }
  if (!dry) await fsyncDir(d.dir).catch(() => undefined);

  // Chains as they stand now (after the moves above).
  const after = await scanDiskDir(d.dir, d.vmContextId, d.diskIndex);
  const committed = after.located.filter((l) => l.imageExists && l.record.state === 'committed').map((l) => l.record);
  for (const r of committed) {
    try {
      chainOf(committed, r.id);
    } catch (err) {
      if (!(err instanceof ChainBroken)) throw err;
      entry({ finding: 'chain-broken', action: 'reported', restorePointId: r.id, name: r.imageName, reason: err.message });
    }
  }
  return entries;
}
