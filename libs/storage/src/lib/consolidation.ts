import { promises as fsp, constants as fsc } from 'node:fs';
import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { chainOf, childrenOf, refOf } from './chain-manager';
import type { ConsolidationJournal, ConsolidationStep } from './consolidation-journal';
import { readJournal, scanDiskDir, type DiskDirScan } from './disk-dir';
import { ConsolidationRefused, CorruptImage, DependentRestorePoints, InsufficientSpace, InvalidRequest, RestorePointNotFound, StorageError } from './errors';
import { exists, fsyncDir, fsyncFile, removeIfExists, writeFileAtomic, allocatedBytes } from './fs-util';
import { JOURNAL_NAME, MERGE_TMP_SUFFIX, sidecarNameFor } from './layout';
import { releaseAll, type FileLockRegistry } from './locks';
import { checkImage, compareImages, convertStandalone, imageInfo, rebaseSafe, rebaseUnsafe } from './qemu-img';
import type { ConsolidationRequest, ConsolidationResult, RestorePointRecord } from './repository';
import { writeSidecar } from './sidecar';
import { layerDigest } from './verification';
import { freeBytes } from './space';

/**
 * Consolidation: merge the restore points from..to (a linear run of one
 * chain) into one image that keeps `to`'s id and content; the others go.
 *
 * Crash safety. Nothing that a listed restore point reads is modified in
 * place before the merged image is complete and durable:
 *  1. journal (phase building) names every file involved;
 *  2. the merged image is built as a NEW temp file: a standalone
 *     `qemu-img convert` of to's chain when merging into the full, or a copy
 *     of `to` safely rebased onto from's parent for a range in the middle;
 *     fsync, `qemu-img check`, optional `qemu-img compare` against `to`;
 *  3. journal phase built (with the survivor's new sidecar) = commit point;
 *  4. rename temp -> final name (for a range the final name is to's own
 *     name, so its children follow without any change);
 *  5. children of `to` are re-pointed with `qemu-img rebase -u` (valid
 *     because the new file has exactly to's content) and their sidecars
 *     updated;
 *  6. survivor sidecar written, old survivor files removed, merged-away
 *     restore points removed (sidecar first, so they vanish before their
 *     image does), journal removed.
 * A crash before 3 rolls back (delete temp); after 3 rolls forward.
 */

/** Consolidations running in this process (a journal with our pid may be live). */
const inFlight = new Set<string>();

export interface ConsolidationOptions {
  locks: FileLockRegistry;
  /** Compare the merged image with the survivor before the swap (costs a full read). */
  compareAfterMerge: boolean;
  /** Space to leave free beyond the merged image's size. */
  reserveBytes?: number;
  /** Test hook: called after each step (a test kills the process here). */
  onStep?: (step: ConsolidationStep) => void | Promise<void>;
}

async function step(opts: ConsolidationOptions, s: ConsolidationStep): Promise<void> {
  if (opts.onStep) await opts.onStep(s);
}

async function writeJournal(dir: string, j: ConsolidationJournal): Promise<void> {
  await writeFileAtomic(path.join(dir, JOURNAL_NAME), JSON.stringify(j, null, 2) + '\n');
}

export async function consolidateInDir(scan: DiskDirScan, req: ConsolidationRequest, opts: ConsolidationOptions): Promise<ConsolidationResult> {
  const { dir } = scan;
  if (scan.journal) {
    throw new ConsolidationRefused('another consolidation of this disk is in progress or was interrupted; run reconcile');
  }
  const records = scan.located.map((l) => l.record);
  const byId = new Map(records.map((r) => [r.id, r]));
  const to = byId.get(req.toId);
  if (!to) throw new RestorePointNotFound(req.toId);
  if (!byId.has(req.fromId)) throw new RestorePointNotFound(req.fromId);
  if (req.fromId === req.toId) throw new InvalidRequest('consolidation needs at least two restore points');

  // The run from..to, walking up from `to`.
  const run: RestorePointRecord[] = [];
  let cur: RestorePointRecord | undefined = to;
  while (cur) {
    run.unshift(cur);
    if (cur.id === req.fromId) break;
    cur = cur.parentId ? byId.get(cur.parentId) : undefined;
  }
  if (run[0]?.id !== req.fromId) {
    throw new InvalidRequest(`restore point ${req.fromId} is not an ancestor of ${req.toId}`);
  }
  for (const r of run) {
    if (r.state !== 'committed') throw new ConsolidationRefused(`restore point ${r.id} is still being written`);
  }
  const from = run[0];
  const removed = run.slice(0, -1);
  // A merged-away restore point may have no dependents outside the run:
  // they would lose their backing file.
  for (let i = 0; i < removed.length; i++) {
    const extra = childrenOf(records, removed[i].id).filter((c) => c.id !== run[i + 1].id);
    if (extra.length) throw new DependentRestorePoints(removed[i].id, extra.map(refOf), 'merged away');
  }
  const children = childrenOf(records, to.id);
  const writing = children.filter((c) => c.state !== 'committed');
  if (writing.length) {
    throw new ConsolidationRefused(`restore point ${writing[0].id} is being written on top of ${to.id}`);
  }

  // The merged image is a new file next to the old ones until the swap: it
  // needs up to the run's allocated bytes (the whole chain for a full).
  const chainBytes = (from.parentId ? run : chainOf(records, to.id)).reduce((s, r) => s + r.allocatedBytes, 0);
  const required = chainBytes + (opts.reserveBytes ?? 0);
  const { free } = await freeBytes(dir);
  if (free < required) throw new InsufficientSpace(required, free, 'the merged image');

  const locks = await opts.locks.acquireAll(
    [...run, ...children].map((r) => r.id),
    'consolidate',
  );
  const jobId = randomUUID();
  try {
    // The scan happened before we held the locks: a backup could have been
    // committed on top of a point in the run meanwhile. Re-read under the
    // locks; a child we do not know about would lose its backing file.
    const again = await scanDiskDir(dir, scan.vmContextId, scan.diskIndex);
    const nowRecords = again.located.map((l) => l.record);
    const known = new Set([...run, ...children].map((r) => r.id));
    const unknown = run.flatMap((r) => childrenOf(nowRecords, r.id)).filter((c) => !known.has(c.id));
    if (again.journal || unknown.length) {
      throw new ConsolidationRefused('the chain changed while the consolidation was starting; retry');
    }
    const newBackingName = from.parentId ? (byId.get(from.parentId)?.imageName ?? null) : null;
    if (from.parentId && !newBackingName) throw new RestorePointNotFound(from.parentId);
    let newImageName = to.imageName;
    if (!newBackingName) {
      newImageName = to.imageName.replace(/^(incr|diff)-/, 'full-');
      for (let n = 2; newImageName !== to.imageName && (await exists(path.join(dir, newImageName))); n++) {
        newImageName = to.imageName.replace(/^(incr|diff)-/, 'full-').replace(/\.qcow2$/, `-${n}.qcow2`);
      }
    }
    const journal: ConsolidationJournal = {
      version: 1,
      jobId,
      phase: 'building',
      pid: process.pid,
      hostname: os.hostname(),
      startedAt: new Date().toISOString(),
      survivorId: to.id,
      survivorOldImage: to.imageName,
      newImageName,
      tmpName: `.${to.imageName}${MERGE_TMP_SUFFIX}`,
      newBackingName,
      removed: removed.map((r) => ({ id: r.id, imageName: r.imageName })),
      children: children.map((c) => ({ id: c.id, imageName: c.imageName })),
      newRecord: null,
    };
    inFlight.add(journal.jobId);
    await writeJournal(dir, journal);
    await step(opts, 'journal-written');

    const tmp = path.join(dir, journal.tmpName);
    try {
      await removeIfExists(tmp);
      if (newBackingName) {
        // Copy (reflink where the file system can) then safe-rebase the copy:
        // qemu writes into it every cluster that differs between to's old
        // backing chain and the new one, i.e. what the run changed.
        await fsp.copyFile(path.join(dir, to.imageName), tmp, fsc.COPYFILE_FICLONE);
        await step(opts, 'temp-copied');
        await rebaseSafe(tmp, newBackingName);
      } else {
        await convertStandalone(path.join(dir, to.imageName), tmp);
      }
      await fsyncFile(tmp);
      await fsyncDir(dir);
      const check = await checkImage(tmp);
      if (!check.clean) throw new CorruptImage(to.id, 'the merged image failed qemu-img check', { localPath: tmp });
      if (opts.compareAfterMerge && !(await compareImages(tmp, path.join(dir, to.imageName)))) {
        throw new CorruptImage(to.id, 'the merged image does not read back like the original', { localPath: tmp });
      }
      const info = await imageInfo(tmp);
      const now = new Date().toISOString();
      journal.newRecord = {
        ...to,
        type: newBackingName ? to.type : 'full',
        parentId: from.parentId,
        imageName: newImageName,
        backingImageName: newBackingName,
        virtualSize: info['virtual-size'],
        allocatedBytes: await allocatedBytes(tmp),
        checksum: await layerDigest(tmp, to.id),
        lastVerification: null,
        mergedFrom: [...to.mergedFrom, ...removed.flatMap((r) => [...r.mergedFrom, r.id])],
        metadata: { ...to.metadata, consolidatedAt: now },
      };
      await step(opts, 'temp-built');
      journal.phase = 'built';
      await writeJournal(dir, journal);
    } catch (err) {
      // Still in phase building: nothing outside the temp file changed.
      await removeIfExists(tmp).catch(() => undefined);
      await removeIfExists(path.join(dir, JOURNAL_NAME)).catch(() => undefined);
      throw err;
    }
    await step(opts, 'journal-built');
    await rollForward(dir, journal, opts);
    return {
      survivorId: to.id,
      removedIds: removed.map((r) => r.id),
      rebasedIds: newImageName !== to.imageName ? children.map((c) => c.id) : [],
    };
  } finally {
    inFlight.delete(jobId);
    await releaseAll(locks);
  }
}

/** Idempotent second half of a consolidation; safe to run again after a crash. */
export async function rollForward(dir: string, j: ConsolidationJournal, opts: ConsolidationOptions): Promise<void> {
  if (!j.newRecord) throw new Error('journal in phase built without the new record');
  const tmp = path.join(dir, j.tmpName);
  const finalPath = path.join(dir, j.newImageName);
  if (await exists(tmp)) {
    await fsp.rename(tmp, finalPath);
    await fsyncDir(dir);
  } else if (!(await exists(finalPath))) {
    throw new CorruptImage(j.survivorId, 'the merged image vanished during consolidation', { localPath: finalPath });
  }
  await step(opts, 'renamed');

  if (j.newImageName !== j.survivorOldImage) {
    for (const c of j.children) {
      const childPath = path.join(dir, c.imageName);
      await rebaseUnsafe(childPath, j.newImageName);
      await fsyncFile(childPath);
      const sidecar = path.join(dir, sidecarNameFor(c.imageName));
      const rec = JSON.parse(await fsp.readFile(sidecar, 'utf8')) as RestorePointRecord;
      if (rec.backingImageName !== j.newImageName) {
        await writeSidecar(dir, { ...rec, backingImageName: j.newImageName });
      }
      await step(opts, 'child-rebased');
    }
  }

  await writeSidecar(dir, j.newRecord);
  await step(opts, 'survivor-sidecar-written');
  if (j.newImageName !== j.survivorOldImage) {
    await removeIfExists(path.join(dir, sidecarNameFor(j.survivorOldImage)));
    await removeIfExists(path.join(dir, j.survivorOldImage));
    await fsyncDir(dir);
    await step(opts, 'old-survivor-removed');
  }
  // Newest first: each merged-away point that is still listed keeps its
  // whole chain until its own turn comes.
  for (const r of [...j.removed].reverse()) {
    await removeIfExists(path.join(dir, sidecarNameFor(r.imageName)));
    await fsyncDir(dir);
    await removeIfExists(path.join(dir, r.imageName));
    await step(opts, 'removed-one');
  }
  await fsyncDir(dir);
  await removeIfExists(path.join(dir, JOURNAL_NAME));
  await fsyncDir(dir);
  await step(opts, 'done');
}

export type RecoveryOutcome = 'rolled-back' | 'rolled-forward' | 'skipped-busy' | 'would-recover' | null;

function ownerAlive(j: ConsolidationJournal): boolean {
  if (j.hostname !== os.hostname()) return true; // cannot probe: assume alive
  if (j.pid === process.pid) return inFlight.has(j.jobId); // ours: running only if still in flight
  try {
    process.kill(j.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Finish or undo an interrupted consolidation in `dir`. */
export async function recoverDir(dir: string, opts: ConsolidationOptions & { dryRun?: boolean; force?: boolean }): Promise<RecoveryOutcome> {
  const j = await readJournal(dir);
  if (!j) return null;
  if (!opts.force && ownerAlive(j)) return 'skipped-busy';
  if (opts.dryRun) return 'would-recover';
  if (j.phase === 'building' || !j.newRecord) {
    await removeIfExists(path.join(dir, j.tmpName));
    await fsyncDir(dir);
    await removeIfExists(path.join(dir, JOURNAL_NAME));
    await fsyncDir(dir);
    return 'rolled-back';
  }
  try {
    await rollForward(dir, j, opts);
  } catch (err) {
    if (err instanceof StorageError) throw err;
    throw new ConsolidationRefused('could not finish an interrupted consolidation', {
      localPath: dir,
      detail: (err as Error).message,
      cause: err,
    });
  }
  return 'rolled-forward';
}
