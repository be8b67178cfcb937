import { promises as fsp } from 'node:fs';
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { chainInfo, chainOf, childrenOf, refOf } from './chain-manager';
import { consolidateInDir, recoverDir, type ConsolidationOptions } from './consolidation';
import type { ConsolidationStep } from './consolidation-journal';
import { listDiskDirs, scanDiskDir, type DiskDirScan, type Located } from './disk-dir';
import {
  BackupInProgress,
  ChainBroken,
  CorruptImage,
  DependentRestorePoints,
  InsufficientSpace,
  InvalidRequest,
  InvalidState,
  RestorePointBusy,
  RestorePointNotFound,
  StorageError,
  isEnospc,
} from './errors';
import { allocatedBytes, exists, fsyncDir, fsyncFile, removeIfExists, writeFileAtomic } from './fs-util';
import { LOCK_DIR, assertDiskIndex, assertSafeId, diskDir, imageBaseName, relName } from './layout';
import { FileLockRegistry, releaseAll, type LockHandle, type LockPurpose, type LockSweep } from './locks';
import { checkImage, createImage, imageInfo, qemuImgVersion } from './qemu-img';
import { reconcileDisk } from './reconcile';
import type {
  BackupRepository,
  ChainInfo,
  CommitRequest,
  ConsolidationRequest,
  ConsolidationResult,
  CreateRestorePointRequest,
  HealthReport,
  ReconcileOptions,
  ReconcileReport,
  RestorePoint,
  RestorePointHandle,
  RestorePointQuery,
  RestorePointRecord,
  SpaceEstimate,
  SpaceInfo,
  VerificationResult,
} from './repository';
import { DEFAULT_SPACE_POLICY, estimateRequiredBytes, freeBytes, type SpacePolicy } from './space';
import { writeSidecar } from './sidecar';
import { layerDigest, verifyImage } from './verification';

export interface LocalQcow2RepositoryOptions {
  root: string;
  space?: Partial<SpacePolicy>;
  /** qemu-img compare the merged image before swapping it in (default true). */
  compareAfterMerge?: boolean;
  /** Test hook: observe (and kill the process at) consolidation steps. */
  onConsolidationStep?: (step: ConsolidationStep) => void | Promise<void>;
  /** Log sink for events worth an operator's attention (paths included: logs only). */
  onEvent?: (event: RepositoryEvent) => void;
}

export interface RepositoryEvent {
  kind: 'aborted' | 'recovered-consolidation';
  restorePointId?: string;
  message: string;
  localPath?: string;
}

/**
 * The only place a local path leaves this library: what the nbd-exporter
 * exports (writable, while writing) or the restore service opens (read-only).
 */
export interface LocalImageTarget {
  kind: 'local-qcow2';
  restorePointId: string;
  imagePath: string;
  format: 'qcow2';
  writable: boolean;
  /** Oldest first: every image a reader of this restore point needs. */
  chainPaths: string[];
}

/** Backup repository of QCOW2 chains in a local (or locally mounted) directory. */
export class LocalQcow2Repository implements BackupRepository {
  readonly kind = 'local-qcow2';
  readonly locks: FileLockRegistry;
  private readonly spacePolicy: SpacePolicy;
  /** Locks held by writes started in this process (released on commit/abort). */
  private readonly writeLocks = new Map<string, LockHandle[]>();

  constructor(private readonly opts: LocalQcow2RepositoryOptions) {
    this.locks = new FileLockRegistry(path.join(opts.root, LOCK_DIR));
    this.spacePolicy = { ...DEFAULT_SPACE_POLICY, ...opts.space };
  }

  /** Opens (creating the root if needed) and finishes interrupted consolidations. */
  static async open(opts: LocalQcow2RepositoryOptions): Promise<LocalQcow2Repository> {
    await fsp.mkdir(opts.root, { recursive: true });
    const repo = new LocalQcow2Repository(opts);
    for (const d of await listDiskDirs(opts.root)) {
      const outcome = await recoverDir(d.dir, repo.consolidationOptions());
      if (outcome && outcome !== 'skipped-busy') {
        opts.onEvent?.({ kind: 'recovered-consolidation', message: `interrupted consolidation ${outcome}`, localPath: d.dir });
      }
    }
    return repo;
  }

  get root(): string {
    return this.opts.root;
  }

  /** `<vmContextId>/disk-<n>/<image>` (the layout above). */
  imageKey(record: Pick<RestorePointRecord, 'vmContextId' | 'diskIndex' | 'imageName'>): string {
    return relName(record.vmContextId, record.diskIndex, record.imageName);
  }

  private consolidationOptions(): ConsolidationOptions {
    return {
      locks: this.locks,
      compareAfterMerge: this.opts.compareAfterMerge ?? true,
      reserveBytes: this.spacePolicy.marginBytes,
      onStep: this.opts.onConsolidationStep,
    };
  }

  // ---- reading -----------------------------------------------------------

  private async scanAll(vmContextId?: string): Promise<DiskDirScan[]> {
    const out: DiskDirScan[] = [];
    for (const d of await listDiskDirs(this.root, vmContextId)) out.push(await scanDiskDir(d.dir, d.vmContextId, d.diskIndex));
    return out;
  }

  private async scanDisk(vmContextId: string, diskIndex: number): Promise<DiskDirScan> {
    return scanDiskDir(diskDir(this.root, vmContextId, diskIndex), vmContextId, diskIndex);
  }

  private async locate(id: string): Promise<{ loc: Located; scan: DiskDirScan }> {
    for (const scan of await this.scanAll()) {
      const loc = scan.located.find((l) => l.record.id === id);
      if (loc) return { loc, scan };
    }
    throw new RestorePointNotFound(id);
  }

  async list(query: RestorePointQuery = {}): Promise<RestorePoint[]> {
    if (query.vmContextId !== undefined) assertSafeId('vmContextId', query.vmContextId);
    const scans =
      query.vmContextId !== undefined && query.diskIndex !== undefined
        ? [await this.scanDisk(query.vmContextId, query.diskIndex)]
        : await this.scanAll(query.vmContextId);
    return scans
      .flatMap((s) => s.located)
      .filter((l) => l.imageExists && (query.includeWriting || l.record.state === 'committed'))
      .map((l) => l.record)
      .filter(
        (r) =>
          (query.diskIndex === undefined || r.diskIndex === query.diskIndex) &&
          (query.type === undefined || r.type === query.type) &&
          (!query.createdAfter || new Date(r.createdAt) > query.createdAfter) &&
          (!query.createdBefore || new Date(r.createdAt) < query.createdBefore),
      )
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  async latest(vmContextId: string, diskIndex: number): Promise<RestorePoint | null> {
    return (await this.list({ vmContextId, diskIndex })).at(-1) ?? null;
  }

  async find(id: string): Promise<RestorePoint | null> {
    try {
      return await this.get(id);
    } catch (err) {
      if (err instanceof RestorePointNotFound) return null;
      throw err;
    }
  }

  async get(id: string): Promise<RestorePoint> {
    const { loc } = await this.locate(id);
    if (loc.record.state !== 'committed' || !loc.imageExists) throw new RestorePointNotFound(id);
    return loc.record;
  }

  async chain(id: string): Promise<ChainInfo> {
    const { scan } = await this.locate(id);
    const present = scan.located.filter((l) => l.imageExists).map((l) => l.record);
    const chain = chainOf(present, id);
    if (chain[chain.length - 1].state !== 'committed') throw new RestorePointNotFound(id);
    return chainInfo(chain);
  }

  async dependents(id: string): Promise<RestorePoint[]> {
    const { scan } = await this.locate(id);
    return childrenOf(
      scan.located.map((l) => l.record),
      id,
    );
  }

  /** Paths for the nbd-exporter (writing) or restore service (reading). */
  async localTarget(id: string): Promise<LocalImageTarget> {
    const { loc, scan } = await this.locate(id);
    const records = scan.located.map((l) => l.record);
    const parentChain = loc.record.parentId ? chainOf(records, loc.record.parentId) : [];
    return {
      kind: 'local-qcow2',
      restorePointId: id,
      imagePath: path.join(loc.dir, loc.record.imageName),
      format: 'qcow2',
      writable: loc.record.state === 'writing',
      chainPaths: [...parentChain, loc.record].map((r) => path.join(loc.dir, r.imageName)),
    };
  }

  /**
   * Mark a restore point and its whole chain busy (shared), e.g. while the
   * restore service has it mounted, so nothing it reads is merged or deleted.
   */
  async acquireChain(id: string, purpose: Extract<LockPurpose, 'mount' | 'export' | 'read'>): Promise<LockHandle[]> {
    const info = await this.chain(id);
    return this.locks.acquireAll(
      info.restorePoints.map((r) => r.id),
      purpose,
    );
  }

  // ---- writing -----------------------------------------------------------

  async estimateSpace(req: CreateRestorePointRequest): Promise<SpaceEstimate> {
    const requiredBytes = estimateRequiredBytes(req, this.spacePolicy);
    const { free } = await freeBytes(this.root);
    return { requiredBytes, availableBytes: free, ok: free >= requiredBytes };
  }

  async createRestorePoint(req: CreateRestorePointRequest): Promise<RestorePointHandle> {
    assertSafeId('vmContextId', req.vmContextId);
    assertDiskIndex(req.diskIndex);
    if (!Number.isSafeInteger(req.virtualSize) || req.virtualSize <= 0 || req.virtualSize % 512 !== 0) {
      throw new InvalidRequest('virtualSize must be a positive multiple of 512');
    }
    const est = await this.estimateSpace(req);
    if (!est.ok) throw new InsufficientSpace(est.requiredBytes, est.availableBytes, `a ${req.type} backup`);

    const dir = diskDir(this.root, req.vmContextId, req.diskIndex);
    await fsp.mkdir(dir, { recursive: true });
    const scan = await scanDiskDir(dir, req.vmContextId, req.diskIndex);
    let parent: RestorePointRecord | null = null;
    if (req.type !== 'full') {
      if (!req.parentId) throw new InvalidRequest(`a ${req.type} restore point needs a parentId`);
      const p = scan.located.find((l) => l.record.id === req.parentId && l.imageExists);
      if (!p || p.record.state !== 'committed') throw new RestorePointNotFound(req.parentId);
      parent = p.record;
      if (req.type === 'differential') {
        // A differential always sits directly on the full of the chain.
        parent = chainOf(
          scan.located.map((l) => l.record),
          parent.id,
        )[0];
      }
    } else if (req.parentId) {
      throw new InvalidRequest('a full restore point has no parent');
    }

    const id = randomUUID();
    const createdAt = req.createdAt ?? new Date();
    let base = imageBaseName(req.type, createdAt);
    for (let n = 2; (await exists(path.join(dir, `${base}.qcow2`))) || (await exists(path.join(dir, `${base}.json`))); n++) {
      base = imageBaseName(req.type, createdAt, n);
    }
    const record: RestorePointRecord = {
      schemaVersion: 1,
      id,
      vmContextId: req.vmContextId,
      diskKey: req.diskKey,
      diskIndex: req.diskIndex,
      type: req.type,
      parentId: parent?.id ?? null,
      changeId: null,
      virtualSize: req.virtualSize,
      allocatedBytes: 0,
      imageName: `${base}.qcow2`,
      backingImageName: parent?.imageName ?? null,
      checksum: null,
      state: 'writing',
      createdAt: createdAt.toISOString(),
      committedAt: null,
      lastVerification: null,
      mergedFrom: [],
      metadata: req.metadata ?? {},
    };

    // The write lock on the new point, shared read locks on its chain so that
    // nothing it reads through is merged or deleted while the copy runs.
    const locks: LockHandle[] = [await this.acquireDiskWriter(req.vmContextId, req.diskIndex)];
    try {
      locks.push(await this.locks.acquire(id, 'write'));
      if (parent) {
        const chain = chainOf(
          scan.located.map((l) => l.record),
          parent.id,
        );
        locks.push(
          ...(await this.locks.acquireAll(
            chain.map((r) => r.id),
            'read',
          )),
        );
      }
      // Sidecar (state writing) before the image: a crash leaves a described
      // half-written point that reconcile removes, never an anonymous file.
      await writeSidecar(dir, record);
      try {
        await createImage(path.join(dir, record.imageName), req.virtualSize, record.backingImageName);
      } catch (err) {
        await removeIfExists(path.join(dir, record.imageName)).catch(() => undefined);
        await removeIfExists(path.join(dir, `${base}.json`)).catch(() => undefined);
        throw err;
      }
    } catch (err) {
      await releaseAll(locks);
      if (isEnospc(err) && !(err instanceof InsufficientSpace)) {
        throw new InsufficientSpace(est.requiredBytes, 0, `a ${req.type} backup`, { cause: err });
      }
      throw err;
    }
    this.writeLocks.set(id, locks);
    return { id, record };
  }

  /**
   * One backup at a time per disk, across processes: two racing backups of
   * the same VM would otherwise both build on the same parent and fork the
   * chain. A writer that died leaves a stale lock that is ignored.
   */
  private async acquireDiskWriter(vmContextId: string, diskIndex: number): Promise<LockHandle> {
    try {
      return await this.locks.acquire(diskWriterLockId(vmContextId, diskIndex), 'write');
    } catch (err) {
      if (err instanceof RestorePointBusy) throw new BackupInProgress(vmContextId, diskIndex, err.holders);
      throw err;
    }
  }

  private async locateWriting(id: string): Promise<Located> {
    const { loc } = await this.locate(id);
    if (loc.record.state !== 'writing') throw new InvalidState(`restore point ${id} is not being written`);
    return loc;
  }

  async commit(id: string, req: CommitRequest): Promise<RestorePoint> {
    const loc = await this.locateWriting(id);
    const file = path.join(loc.dir, loc.record.imageName);
    if (!loc.imageExists) throw new ChainBroken(id, 'the image being written is missing', { localPath: file });
    // The writer flushed over NBD; fsync makes the data durable regardless of
    // what the exporter's cache mode did.
    await fsyncFile(file);
    // The checks read metadata, the digest reads the data: run them side by
    // side, then judge them in order (a digest of an image that fails the
    // check is thrown away).
    const [checkR, infoR, allocatedR, digestR] = await Promise.allSettled([checkImage(file), imageInfo(file), allocatedBytes(file), layerDigest(file, id)]);
    const check = settled(checkR);
    if (!check.clean) {
      throw new CorruptImage(id, 'qemu-img check found problems; abort and retry the backup', {
        localPath: file,
        detail: JSON.stringify(check.raw),
      });
    }
    const info = settled(infoR);
    if ((info['backing-filename'] ?? null) !== loc.record.backingImageName) {
      throw new ChainBroken(id, 'the image does not point at its parent', { localPath: file });
    }
    const committed: RestorePointRecord = {
      ...loc.record,
      state: 'committed',
      changeId: req.changeId,
      virtualSize: info['virtual-size'],
      allocatedBytes: settled(allocatedR),
      checksum: settled(digestR),
      committedAt: new Date().toISOString(),
      metadata: { ...loc.record.metadata, ...req.metadata },
    };
    try {
      await writeSidecar(loc.dir, committed);
    } catch (err) {
      if (isEnospc(err)) throw new InsufficientSpace(4096, 0, 'the restore point metadata', { cause: err });
      throw err;
    }
    await releaseAll(this.writeLocks.get(id) ?? []);
    this.writeLocks.delete(id);
    return committed;
  }

  async abort(id: string, reason: string): Promise<void> {
    try {
      let loc: Located;
      try {
        loc = await this.locateWriting(id);
      } catch (err) {
        // Already gone (e.g. a second abort): only our locks are left to drop.
        if (err instanceof RestorePointNotFound && this.writeLocks.has(id)) return;
        throw err;
      }
      this.opts.onEvent?.({ kind: 'aborted', restorePointId: id, message: reason, localPath: path.join(loc.dir, loc.record.imageName) });
      // Image first: a crash in between leaves a "writing" sidecar without an
      // image, which reconcile deletes; the reverse would leave an anonymous file.
      await removeIfExists(path.join(loc.dir, loc.record.imageName));
      await fsyncDir(loc.dir);
      await removeIfExists(path.join(loc.dir, loc.sidecarName));
      await fsyncDir(loc.dir);
    } finally {
      // Always: a long-lived worker must not keep the disk's writer lock
      // because an abort failed half-way; reconcile removes what is left.
      await releaseAll(this.writeLocks.get(id) ?? []);
      this.writeLocks.delete(id);
    }
  }

  async delete(id: string): Promise<void> {
    const { loc, scan } = await this.locate(id);
    if (loc.record.state !== 'committed') throw new InvalidState(`restore point ${id} is being written; abort it instead`);
    const deps = childrenOf(
      scan.located.map((l) => l.record),
      id,
    );
    if (deps.length) throw new DependentRestorePoints(id, deps.map(refOf));
    const lock = await this.locks.acquire(id, 'delete');
    try {
      // Sidecar first: the restore point disappears before its data does.
      await removeIfExists(path.join(loc.dir, loc.sidecarName));
      await fsyncDir(loc.dir);
      await removeIfExists(path.join(loc.dir, loc.record.imageName));
      await fsyncDir(loc.dir);
    } finally {
      await lock.release();
    }
  }

  // ---- chain management ---------------------------------------------------

  async consolidate(req: ConsolidationRequest): Promise<ConsolidationResult> {
    const { scan } = await this.locate(req.toId);
    return consolidateInDir(scan, req, this.consolidationOptions());
  }

  /** Verify every image a restore of `id` reads (oldest first). */
  async verifyChain(id: string): Promise<VerificationResult[]> {
    const info = await this.chain(id);
    const out: VerificationResult[] = [];
    for (const r of info.restorePoints) out.push(await this.verify(r.id));
    return out;
  }

  async verify(id: string): Promise<VerificationResult> {
    const { loc } = await this.locate(id);
    if (loc.record.state !== 'committed' || !loc.imageExists) throw new RestorePointNotFound(id);
    const lock = await this.locks.acquire(id, 'verify');
    try {
      const r = loc.record;
      const v = await verifyImage(path.join(loc.dir, r.imageName), r);
      const at = new Date().toISOString();
      const ok = v.checkClean && v.checksumMatches && v.problems.length === 0;
      const lastVerification = { at, ok, checkClean: v.checkClean, checksumMatches: v.checksumMatches, problems: v.problems };
      await writeSidecar(loc.dir, { ...r, lastVerification }).catch((err: unknown) => {
        // Recording is best effort (e.g. a full disk); the result is still returned.
        if (!isEnospc(err)) throw err;
      });
      return { restorePointId: id, expectedChecksum: r.checksum, actualChecksum: v.actualChecksum, ...lastVerification };
    } finally {
      await lock.release();
    }
  }

  // ---- repository --------------------------------------------------------

  async space(): Promise<SpaceInfo> {
    const { total, free } = await freeBytes(this.root);
    const used = (await this.scanAll()).flatMap((s) => s.located).reduce((sum, l) => sum + (l.record.state === 'committed' ? l.record.allocatedBytes : 0), 0);
    return { totalBytes: total, freeBytes: free, usedByRepositoryBytes: used };
  }

  async health(): Promise<HealthReport> {
    const problems: string[] = [];
    let writable = false;
    let toolsAvailable = false;
    try {
      const probe = path.join(this.root, `.health-${process.pid}`);
      await writeFileAtomic(probe, 'ok');
      await fsp.rm(probe, { force: true });
      writable = true;
    } catch (err) {
      problems.push(`repository is not writable${isEnospc(err) ? ' (full)' : ''}`);
    }
    try {
      await qemuImgVersion();
      toolsAvailable = true;
    } catch {
      problems.push('qemu-img is not available');
    }
    let pending = 0;
    try {
      pending = (await this.scanAll()).filter((s) => s.journal).length;
      if (pending) problems.push(`${pending} consolidation(s) pending recovery`);
      const { free } = await freeBytes(this.root);
      if (free < this.spacePolicy.marginBytes) problems.push('free space is below the reserve');
    } catch (err) {
      problems.push(err instanceof StorageError ? err.message : 'repository cannot be read');
    }
    return { ok: problems.length === 0, writable, toolsAvailable, pendingConsolidations: pending, problems };
  }

  async importRepository(): Promise<RestorePointRecord[]> {
    return this.list();
  }

  sweepStaleLocks(): Promise<LockSweep> {
    return this.locks.sweep();
  }

  async reconcile(opts: ReconcileOptions = {}): Promise<ReconcileReport> {
    const report: ReconcileReport = { entries: [], committedRestorePoints: 0 };
    for (const d of await listDiskDirs(this.root)) {
      const entries = await reconcileDisk(this.root, d, this.locks, { ...this.consolidationOptions(), dryRun: opts.dryRun });
      report.entries.push(...entries);
    }
    report.committedRestorePoints = (await this.list()).length;
    return report;
  }
}

/** Narrowing for callers that hold a BackupRepository and need local paths. */
export function diskWriterLockId(vmContextId: string, diskIndex: number): string {
  return `disk.${vmContextId}.${diskIndex}`;
}

export function isLocalRepository(repo: BackupRepository): repo is LocalQcow2Repository {
  return repo.kind === 'local-qcow2';
}

/** The value of a settled promise, or its error thrown. */
function settled<T>(r: PromiseSettledResult<T>): T {
  if (r.status === 'rejected') throw r.reason;
  return r.value;
}
