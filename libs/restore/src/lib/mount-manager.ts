import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, realpath, rmdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { LostMount, MountInfo } from '@sendense/contracts';
import { processStartTime, type Daemon } from '@sendense/process';
import { MountFailed, MountGone, MountLimitReached, MountNotFound } from './errors';
import { mountedTargets, mountProblems } from './mount-health';
import { detectFilesystem, driverFor, mountFilesystem } from './filesystem';
import { startFuseExport } from './fuse-export';
import { readChain } from './image-chain';
import { attachLoop, detachLoop } from './loop-device';
import { writeState, type BlockMode, type MountState, type PartitionState } from './mount-state';
import { connectNbd, nbdAvailable } from './nbd-connect';
import { cleanupOrphans, type OrphanReport } from './orphan-cleanup';
import { readPartitionTable } from './partition-table';
import { teardownState } from './teardown';

/**
 * Mounts restore points (the top QCOW2 of a chain) read-only and keeps track
 * of them: one block export per mount (qemu-storage-daemon FUSE file, or
 * qemu-nbd on hosts with /dev/nbd*), one read-only loop device per
 * partition, one read-only filesystem mount per supported partition.
 */

/** 'fuse-loop' is the settings' spelling of 'fuse'. */
export type ModeOption = 'auto' | 'fuse-loop' | BlockMode;

export interface MountManagerOptions {
  /** Parent of all mounts: <mountRoot>/<mountId>/<partition>. */
  mountRoot?: string;
  /** Holds state/ (one JSON per mount) and fuse/ (the FUSE export files). */
  runDir?: string;
  /** Unmount after this long without access (default 1 h; 0 disables). */
  idleTimeoutMs?: number;
  idleCheckIntervalMs?: number;
  /** How the chain becomes a block device (default auto: nbd when /dev/nbd0 exists). */
  mode?: ModeOption;
  forceShare?: boolean;
  readyTimeoutMs?: number;
  /**
   * When set, every file of a chain must lie below one of these directories
   * (the backup repositories): the service runs as root and must not become a
   * way to mount arbitrary host files.
   */
  allowedImageRoots?: string[];
  /**
   * Most mounts this manager holds at once (each costs a qemu-storage-daemon
   * and loop devices); a mount beyond it is refused with MountLimitReached.
   * 0 or absent: no limit.
   */
  maxMounts?: number;
  log?: (message: string) => void;
}

export interface MountRequest {
  imagePath: string;
  /** A UUID; generated when absent. It becomes a directory name, hence the format check. */
  mountId?: string;
  mode?: ModeOption;
  forceShare?: boolean;
  format?: 'qcow2' | 'raw';
  /** Return an existing mount of the same restore point instead of mounting again. */
  reuse?: boolean;
  /**
   * The chain the caller expects (top first, as MountInfo.chain): the mount is
   * refused when the image's actual backing chain differs, so that a
   * repository edit can never make us expose other data than the caller meant.
   */
  expectedChain?: string[];
}

// One definition of the shapes the service answers with: the restore-service contract.
export type { MountInfo, PartitionInfo } from '@sendense/contracts';

export type UnmountReason = 'request' | 'idle' | 'shutdown' | 'export-died' | 'vanished';

export type { LostMount } from '@sendense/contracts';

interface LiveMount {
  state: MountState;
  daemon?: Daemon;
  lastAccess: number;
  streams: Set<Readable>;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const DEFAULT_MOUNT_ROOT = '/mnt/sendense';
export const DEFAULT_RUN_DIR = '/run/sendense/restore';
export const DEFAULT_IDLE_TIMEOUT_MS = 60 * 60 * 1000;

export class MountManager extends EventEmitter {
  readonly mountRoot: string;
  readonly runDir: string;
  readonly stateDir: string;
  readonly fuseDir: string;
  readonly idleTimeoutMs: number;
  private readonly options: MountManagerOptions;
  private readonly mounts = new Map<string, LiveMount>();
  /** Ids being mounted: reserved so that a concurrent request cannot reuse them. */
  private readonly pending = new Set<string>();
  private readonly closing = new Map<string, Promise<void>>();
  /** Mounts under way by image: a reuse request for the same image waits for it instead of mounting a second time. */
  private readonly mountingImages = new Map<string, Promise<MountInfo>>();
  private idleTimer?: NodeJS.Timeout;
  private readonly lost: LostMount[] = [];

  constructor(options: MountManagerOptions = {}) {
    super();
    this.options = options;
    this.mountRoot = resolve(options.mountRoot ?? DEFAULT_MOUNT_ROOT);
    this.runDir = resolve(options.runDir ?? DEFAULT_RUN_DIR);
    this.stateDir = join(this.runDir, 'state');
    this.fuseDir = join(this.runDir, 'fuse');
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (this.idleTimeoutMs > 0) {
      const interval = options.idleCheckIntervalMs ?? Math.min(60000, Math.max(100, Math.floor(this.idleTimeoutMs / 4)));
      this.idleTimer = setInterval(() => void this.unmountIdle(), interval);
      this.idleTimer.unref();
    }
  }

  private log(message: string): void {
    this.options.log?.(message);
  }

  private resolveMode(mode: ModeOption | undefined): BlockMode {
    const m = mode ?? this.options.mode ?? 'auto';
    if (m === 'fuse-loop') return 'fuse';
    if (m !== 'auto') return m;
    return nbdAvailable() ? 'nbd' : 'fuse';
  }

  async mount(request: MountRequest): Promise<MountInfo> {
    const image = resolve(request.imagePath);
    if (request.reuse) {
      for (;;) {
        const existing = [...this.mounts.values()].find((l) => l.state.imagePath === image);
        if (existing) {
          existing.lastAccess = Date.now();
          return this.describe(existing);
        }
        const inFlight = this.mountingImages.get(image);
        // Nothing awaits between this check and the registration below, so two requests never both mount.
        if (!inFlight) break;
        // Its failure is its own caller's to report; this request then mounts by itself.
        await inFlight.catch(() => undefined);
        if (this.mountingImages.get(image) === inFlight) this.mountingImages.delete(image);
      }
    }
    const mountId = (request.mountId ?? randomUUID()).toLowerCase();
    if (!UUID_RE.test(mountId)) throw new MountFailed(`mount id must be a UUID, got ${JSON.stringify(request.mountId)}`);
    if (this.mounts.has(mountId) || this.pending.has(mountId)) throw new MountFailed(`mount id ${mountId} is already in use`);
    const max = this.options.maxMounts ?? 0;
    if (max > 0 && this.mounts.size + this.pending.size >= max) throw new MountLimitReached(max, this.mounts.size + this.pending.size);
    this.pending.add(mountId);
    const mounting = this.doMount(mountId, request);
    // Registered synchronously after the reuse check: a concurrent reuse request sees it and waits.
    if (!this.mountingImages.has(image)) this.mountingImages.set(image, mounting);
    try {
      return await mounting;
    } finally {
      this.pending.delete(mountId);
      if (this.mountingImages.get(image) === mounting) this.mountingImages.delete(image);
    }
  }

  private async doMount(mountId: string, request: MountRequest): Promise<MountInfo> {
    const imagePath = resolve(request.imagePath);
    const format = request.format ?? 'qcow2';
    const mode = this.resolveMode(request.mode);
    const forceShare = request.forceShare ?? this.options.forceShare ?? false;
    const started = Date.now();

    let chainInfo;
    try {
      chainInfo = await readChain(imagePath);
    } catch (err) {
      throw new MountFailed(`cannot read restore point ${imagePath}: ${(err as Error).message}`, err);
    }
    if (chainInfo.format !== format) {
      throw new MountFailed(`restore point ${imagePath} is ${chainInfo.format}, expected ${format}`);
    }
    if (this.options.allowedImageRoots) {
      // Compare real paths: a symlink in a repository must not point the
      // privileged service at an arbitrary host file.
      const real = async (p: string) => realpath(p).catch(() => resolve(p));
      const roots = await Promise.all(this.options.allowedImageRoots.map(real));
      const files = await Promise.all(chainInfo.chain.map(real));
      const outside = files.filter((f) => !roots.some((r) => f.startsWith(`${r}/`)));
      if (outside.length) throw new MountFailed(`images outside the allowed repositories: ${outside.join(', ')}`);
    }
    if (request.expectedChain) {
      const expected = request.expectedChain.map((p) => resolve(p));
      if (JSON.stringify(expected) !== JSON.stringify(chainInfo.chain)) {
        throw new MountFailed(`backing chain of ${imagePath} is ${chainInfo.chain.join(' <- ')}, expected ${expected.join(' <- ')}`);
      }
    }

    const root = join(this.mountRoot, mountId);
    const state: MountState = {
      version: 1,
      mountId,
      imagePath,
      chain: chainInfo.chain,
      mode,
      root,
      ownerPid: process.pid,
      ownerStartTime: await processStartTime(process.pid),
      createdAt: new Date().toISOString(),
      virtualSize: chainInfo.virtualSize,
      partitionTable: null,
      partitions: [],
    };
    let daemon: Daemon | undefined;
    const save = () => writeState(this.stateDir, state);
    try {
      await mkdir(root, { recursive: true, mode: 0o700 });
      await save();
      let disk: string;
      if (mode === 'fuse') {
        await mkdir(this.fuseDir, { recursive: true, mode: 0o700 });
        const fuseFile = join(this.fuseDir, `${mountId}.img`);
        // FUSE mounts onto an existing regular file.
        await writeFile(fuseFile, '', { mode: 0o600 });
        state.fuseFile = fuseFile;
        await save();
        const exp = await startFuseExport(imagePath, fuseFile, {
          format,
          forceShare,
          readyTimeoutMs: this.options.readyTimeoutMs,
        });
        daemon = exp.daemon;
        state.qsdPid = exp.pid;
        disk = fuseFile;
      } else {
        const conn = await connectNbd(imagePath, { format, forceShare });
        state.nbdDevice = conn.device;
        state.nbdPid = conn.pid;
        disk = conn.device;
      }
      await save();

      const table = await readPartitionTable(disk);
      state.partitionTable = table?.label ?? null;
      const targets =
        table && table.partitions.length
          ? table.partitions.map((p) => ({ name: p.name, index: p.index as number | null, range: { offset: p.offsetBytes, size: p.sizeBytes } }))
          : [{ name: 'disk', index: null, range: undefined }];
      for (const t of targets) {
        const part: PartitionState = {
          name: t.name,
          index: t.index,
          offsetBytes: t.range?.offset ?? 0,
          sizeBytes: t.range?.size ?? chainInfo.virtualSize,
          fsType: null,
          mounted: false,
        };
        state.partitions.push(part);
        part.loopDevice = await attachLoop(disk, t.range);
        await save();
        await this.mountPartition(part, root);
        await save();
      }
      if (!state.partitions.some((p) => p.mounted)) {
        const found = state.partitions.map((p) => `${p.name}: ${p.fsType ?? 'no filesystem'}`).join(', ');
        throw new MountFailed(`no supported filesystem in ${imagePath} (${found})`);
      }
    } catch (err) {
      this.log(`mount ${mountId} of ${imagePath} failed, tearing down: ${(err as Error).message}`);
      await teardownState(state, { stateDir: this.stateDir, fuseDir: this.fuseDir, daemon }).catch((e: Error) =>
        this.log(`teardown after failed mount ${mountId}: ${e.message}`),
      );
      if (err instanceof MountFailed) throw err;
      throw new MountFailed(`mounting ${imagePath} failed: ${(err as Error).message}`, err);
    }
    const live: LiveMount = { state, daemon, lastAccess: Date.now(), streams: new Set() };
    this.mounts.set(mountId, live);
    // A dead export turns every read into EIO: tear the mount down at once
    // instead of serving errors until the idle timeout.
    void daemon?.exited.then(() => {
      if (this.mounts.get(mountId) !== live) return;
      this.log(`block export of ${mountId} stopped unexpectedly: ${daemon.stderr.trim()}`);
      this.unmount(mountId, 'export-died').catch(() => undefined);
    });
    this.log(`mounted ${imagePath} as ${mountId} (${mode}) in ${Date.now() - started} ms`);
    return this.describe(live);
  }

  /** Detect and mount one partition; an unsupported one keeps no loop device. */
  private async mountPartition(part: PartitionState, root: string): Promise<void> {
    const loop = part.loopDevice as string;
    const fs = await detectFilesystem(loop);
    part.fsType = fs?.type ?? null;
    const driver = fs ? await driverFor(fs.type) : null;
    if (!driver) {
      part.error = fs ? `unsupported filesystem ${fs.type}` : 'no filesystem recognized';
      await detachLoop(loop);
      delete part.loopDevice;
      return;
    }
    const dir = join(root, part.name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    part.dir = dir; // recorded before mounting so that a crash in mount is cleaned up
    try {
      await mountFilesystem(loop, dir, driver);
      part.mounted = true;
    } catch (err) {
      part.error = `mount failed: ${(err as Error).message}`;
      this.log(`partition ${part.name} (${part.fsType}) not mounted: ${part.error}`);
      // Leave no empty directory (it would look like an empty partition) and
      // no loop device for a partition that is not mounted.
      await rmdir(dir).catch(() => undefined);
      delete part.dir;
      await detachLoop(loop);
      delete part.loopDevice;
    }
  }

  private describe(live: LiveMount): MountInfo {
    const s = live.state;
    return {
      mountId: s.mountId,
      imagePath: s.imagePath,
      chain: [...s.chain],
      mode: s.mode,
      root: s.root,
      createdAt: s.createdAt,
      lastAccessAt: new Date(live.lastAccess).toISOString(),
      activeStreams: live.streams.size,
      partitionTable: s.partitionTable,
      partitions: s.partitions.map((p) => ({
        name: p.name,
        index: p.index,
        offsetBytes: p.offsetBytes,
        sizeBytes: p.sizeBytes,
        fsType: p.fsType,
        mounted: p.mounted,
        hostPath: p.mounted ? p.dir : undefined,
        error: p.error,
      })),
    };
  }

  private live(mountId: string): LiveMount {
    const live = this.mounts.get(mountId);
    if (!live) throw new MountNotFound(mountId);
    const problems = this.problemsOf(live);
    if (problems.length) {
      this.lose(mountId, live, problems);
      throw new MountGone(mountId, problems);
    }
    return live;
  }

  private problemsOf(live: LiveMount, targets?: Set<string>): string[] {
    return mountProblems(live.state, targets ?? mountedTargets(), live.daemon ? live.daemon.running : undefined);
  }

  /** Forget a mount that vanished and clean up what is left of it (loop devices, export, directories). */
  private lose(mountId: string, live: LiveMount, problems: string[]): void {
    if (this.mounts.get(mountId) !== live) return;
    this.log(`mount ${mountId} of ${live.state.imagePath} vanished: ${problems.join('; ')}; cleaning up`);
    this.lost.unshift({ mountId, imagePath: live.state.imagePath, problems, at: new Date().toISOString() });
    this.lost.splice(20);
    this.unmount(mountId, 'vanished').catch(() => undefined);
  }

  /** Mounts lost in the last `withinMs` (default 15 min), newest first. */
  lostMounts(withinMs = 15 * 60_000, now = Date.now()): LostMount[] {
    return this.lost.filter((l) => now - Date.parse(l.at) <= withinMs);
  }

  get(mountId: string): MountInfo {
    return this.describe(this.live(mountId));
  }

  /** The live mounts; one whose file system vanished is dropped (and cleaned up) here. */
  list(): MountInfo[] {
    const targets = mountedTargets();
    const out: MountInfo[] = [];
    for (const [id, l] of [...this.mounts.entries()]) {
      const problems = this.problemsOf(l, targets);
      if (problems.length) this.lose(id, l, problems);
      else out.push(this.describe(l));
    }
    return out;
  }

  /** Record an access (resets the idle clock). */
  touch(mountId: string): void {
    this.live(mountId).lastAccess = Date.now();
  }

  /** The directory that holds the mount's partitions; counts as an access. */
  rootOf(mountId: string): string {
    const live = this.live(mountId);
    live.lastAccess = Date.now();
    return live.state.root;
  }

  /**
   * Register a stream reading from the mount: the mount is not idle while it
   * is open, and unmount destroys it first so that umount is not busy.
   */
  trackStream(mountId: string, stream: Readable): void {
    const live = this.live(mountId);
    live.streams.add(stream);
    live.lastAccess = Date.now();
    stream.once('close', () => {
      live.streams.delete(stream);
      live.lastAccess = Date.now();
    });
  }

  /** Images (every file of every mounted chain) that must not be deleted or consolidated. */
  imagesInUse(): string[] {
    const set = new Set<string>();
    for (const l of this.mounts.values()) for (const f of l.state.chain) set.add(f);
    return [...set];
  }

  isImageInUse(imagePath: string): boolean {
    return this.imagesInUse().includes(resolve(imagePath));
  }

  async unmount(mountId: string, reason: UnmountReason = 'request'): Promise<void> {
    const inFlight = this.closing.get(mountId);
    if (inFlight) return inFlight;
    const live = this.mounts.get(mountId);
    if (!live) throw new MountNotFound(mountId);
    const p = (async () => {
      this.mounts.delete(mountId);
      for (const s of live.streams) s.destroy();
      // Give destroyed streams a tick to close their file descriptors.
      if (live.streams.size) await new Promise((r) => setTimeout(r, 20));
      try {
        await teardownState(live.state, { stateDir: this.stateDir, fuseDir: this.fuseDir, daemon: live.daemon });
      } catch (err) {
        this.emit('unmount-failed', { mountId, reason, error: err });
        throw err;
      }
      this.log(`unmounted ${mountId} (${reason})`);
      this.emit('unmounted', { mountId, reason });
    })();
    this.closing.set(mountId, p);
    try {
      await p;
    } finally {
      this.closing.delete(mountId);
    }
  }

  /** Unmount every mount without access for idleTimeoutMs and no open stream. */
  async unmountIdle(now = Date.now()): Promise<string[]> {
    if (this.idleTimeoutMs <= 0) return [];
    const idle = [...this.mounts.entries()].filter(([, l]) => l.streams.size === 0 && now - l.lastAccess >= this.idleTimeoutMs).map(([id]) => id);
    for (const id of idle) await this.unmount(id, 'idle').catch(() => undefined);
    return idle;
  }

  /** Remove what a crashed predecessor left behind (call on start, before mounting). */
  async cleanupOrphans(): Promise<OrphanReport> {
    const keep = new Set(this.mounts.keys());
    for (const id of this.pending) keep.add(id);
    return cleanupOrphans({
      mountRoot: this.mountRoot,
      stateDir: this.stateDir,
      fuseDir: this.fuseDir,
      keepMountIds: keep,
      log: (m) => this.log(m),
    });
  }

  /** Stop the idle timer and, by default, unmount everything. */
  async close({ unmountAll = true }: { unmountAll?: boolean } = {}): Promise<void> {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    if (!unmountAll) return;
    const errors: unknown[] = [];
    for (const id of [...this.mounts.keys()]) await this.unmount(id, 'shutdown').catch((e) => errors.push(e));
    if (errors.length) throw new AggregateError(errors, 'some mounts could not be unmounted');
  }
}
