import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { CreateNbdExportRequest, NbdExportInfo, NbdExportKind, RemoveNbdExportResponse } from '@sendense/contracts';
import type { ExporterConfig } from '../config/exporter-config';
import { conflict, internal, invalid } from '../exporter-error';
import { buildExportName, validateExportName } from '../naming/export-name';
import { inspectImage } from '../servers/image-inspector';
import { NbdServerLauncher } from '../servers/nbd-server-launcher';
import { PortAllocator } from '../servers/port-allocator';
import { CommandError, findProcesses, isAlive, pidConnectionCount, readArgv, run, terminate } from '@sendense/process';
import { QemuNbdLauncher } from '../servers/qemu-nbd-launcher';
import { PortTakenError, type ServerLauncher } from '../servers/server-launcher';
import { MAX_SOCKET_PATH, StatePaths } from '../servers/state-paths';
import type { ExportRecord, ExportRecordStore } from '../store/export-record';
import { validateExportPath } from '../validation/path-validator';
import { KeyedMutex } from './keyed-mutex';

export interface ExporterLogger {
  log(message: string): void;
  warn(message: string): void;
}

const silent: ExporterLogger = { log: () => undefined, warn: () => undefined };

/** Why an export was removed: asked for, idle, its image gone (orphan), its server died. */
export type RemovalReason = 'request' | 'idle' | 'orphan' | 'dead';

/** What the exporter's metrics count (the Nest module wires them; tests may leave them out). */
export interface ExportObserver {
  created(kind: NbdExportKind): void;
  removed(reason: RemovalReason): void;
  reconciled(report: ReconcileReport): void;
}

const unobserved: ExportObserver = { created: () => undefined, removed: () => undefined, reconciled: () => undefined };
const KINDS: readonly NbdExportKind[] = ['qcow2', 'raw', 'block'];
const JOB_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
/** Creates retried when another program takes the allocated port first. */
const PORT_ATTEMPTS = 4;
/** Per server; SIGTERM of the whole service must finish within 10 s. */
const STOP_GRACE_MS = 6000;
/** Idle timeouts of instant-access exports: one second (tests) to a week. */
const IDLE_MIN_S = 1;
const IDLE_MAX_S = 604_800;
/** The one TLS-PSK identity of an export: the key, not the name, is the secret. */
export const PSK_IDENTITY = 'sendense';

export interface ReconcileReport {
  kept: string[];
  removedRecords: string[];
  killedPids: number[];
  removedConfigs: string[];
}

/**
 * Owns every NBD export of this node: starts and stops the servers, keeps
 * the records, and reconciles records with running processes at start.
 * Plain class (no Nest) so tests drive it directly.
 */
export class NbdExportManager {
  readonly paths: StatePaths;
  private readonly ports: PortAllocator;
  private readonly launchers: Record<NbdExportKind, ServerLauncher>;
  private readonly locks = new KeyedMutex();
  /** Virtual sizes, computed once per export (qemu-img info is ~20 ms). */
  private readonly sizes = new Map<string, number>();
  private realRoots: string[] | null = null;
  private stopping = false;
  /** NBD_SOCKET_GROUP resolved at start: Unix-socket exports are chowned to it (0660). */
  private socketGid: number | null = null;

  constructor(
    private readonly config: ExporterConfig,
    private readonly store: ExportRecordStore,
    private readonly logger: ExporterLogger = silent,
    private readonly observer: ExportObserver = unobserved,
  ) {
    this.paths = new StatePaths(config.stateDir);
    this.ports = new PortAllocator(config.listenAddress, config.portRange.first, config.portRange.last);
    const qemu = new QemuNbdLauncher(this.paths, config.tlsCredsDir);
    const nbd = new NbdServerLauncher(this.paths);
    this.launchers = { qcow2: qemu, raw: nbd, block: nbd };
  }

  /** Create the state dirs and adopt or clean up what a previous run left. */
  async start(): Promise<ReconcileReport> {
    await this.paths.ensure();
    await this.prepareSocketDir();
    return this.reconcile();
  }

  /**
   * The sockets dir: 0700 (only this user and root may connect), or 0710 owned by
   * NBD_SOCKET_GROUP, whose members may then reach the sockets (each 0660, that group).
   */
  private async prepareSocketDir(): Promise<void> {
    const group = this.config.socketGroup;
    if (group !== null) this.socketGid = /^\d+$/.test(group) ? Number(group) : await gidOf(group);
    if (this.socketGid !== null) await chown(this.paths.socketDir, -1, this.socketGid);
    await chmod(this.paths.socketDir, this.socketGid === null ? 0o700 : 0o710);
  }

  /** The request's fields, each checked (a refusal names the field and what it must be). */
  private checkRequest(request: CreateNbdExportRequest) {
    if (typeof request !== 'object' || request === null) throw invalid('request is missing');
    const kind = request.kind;
    if (!KINDS.includes(kind)) throw invalid(`kind ${JSON.stringify(kind)} is not one of ${KINDS.join(', ')}`);
    const writable = request.writable ?? false;
    if (typeof writable !== 'boolean') throw invalid('writable must be true or false');
    const backupJobId = request.backupJobId ?? null;
    if (backupJobId !== null && (typeof backupJobId !== 'string' || !JOB_ID_RE.test(backupJobId))) {
      throw invalid(`backupJobId ${JSON.stringify(backupJobId)} must be 1-128 letters, digits or ._:-`);
    }
    const restorePointId = request.restorePointId ?? null;
    if (restorePointId !== null && (typeof restorePointId !== 'string' || !JOB_ID_RE.test(restorePointId))) {
      throw invalid(`restorePointId ${JSON.stringify(restorePointId)} must be 1-128 letters, digits or ._:-`);
    }
    const overlay = request.overlay ?? false;
    if (typeof overlay !== 'boolean') throw invalid('overlay must be true or false');
    if (overlay && restorePointId === null) throw invalid('overlay needs restorePointId: only instant-access exports get a temporary overlay');
    if (overlay && writable) throw invalid('overlay and writable exclude each other: an overlay export writes the overlay, never the image');
    if (restorePointId !== null && kind !== 'qcow2') throw invalid(`instant access serves QCOW2 restore points; kind is "${kind}"`);
    if (restorePointId !== null && writable)
      throw invalid('an instant-access export is read-only or writes a temporary overlay (overlay: true), never the restore point');
    const idle = request.idleTimeoutSeconds ?? null;
    if (idle !== null && (!Number.isInteger(idle) || idle < IDLE_MIN_S || idle > IDLE_MAX_S)) {
      throw invalid(`idleTimeoutSeconds ${JSON.stringify(idle)} must be a whole number from ${IDLE_MIN_S} to ${IDLE_MAX_S}`);
    }
    const tlsWanted = request.tls ?? (restorePointId !== null ? this.config.restoreTls : 'none');
    if (tlsWanted !== 'psk' && tlsWanted !== 'none') throw invalid(`tls ${JSON.stringify(tlsWanted)} is not one of psk, none`);
    if (tlsWanted === 'psk' && kind !== 'qcow2') throw invalid('TLS-PSK is served by qemu-nbd: only for kind qcow2');
    const tlsMode: 'psk' | null = tlsWanted === 'psk' ? 'psk' : null;
    const transport = request.transport ?? 'tcp';
    if (transport !== 'tcp' && transport !== 'unix') throw invalid(`transport ${JSON.stringify(transport)} is not one of tcp, unix`);
    if (transport === 'unix') {
      if (kind !== 'qcow2') throw invalid('transport unix is served by qemu-nbd: only for kind qcow2');
      if (tlsMode !== null) throw invalid("transport unix takes no TLS (the socket's file permissions decide who connects): ask for tls none or transport tcp");
      if (idle !== null) throw invalid('an idle timeout needs transport tcp (connected clients are counted on its port)');
    }
    return { kind, writable, backupJobId, restorePointId, overlay, idle, tlsMode, transport };
  }

  async create(request: CreateNbdExportRequest): Promise<NbdExportInfo> {
    if (this.stopping) throw conflict('the exporter is shutting down');
    const { kind, writable, backupJobId, restorePointId, overlay, idle, tlsMode, transport } = this.checkRequest(request);

    const name = buildExportName(request);
    const socketPath = transport === 'unix' ? this.paths.socketFile(name) : null;
    if (socketPath !== null && Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      throw invalid(
        `the socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes: give the nbd-exporter a shorter NBD_STATE_DIR, or use transport tcp`,
      );
    }
    const roots = await this.roots();
    const filePath = await validateExportPath(request.filePath, kind, this.config.allowedRoots);
    const virtualSize = await inspectImage(filePath, kind, roots);

    // Check and claim under one lock: name uniqueness and the one-writer rule
    // must hold across concurrent creates. The server starts outside it.
    const record = await this.locks.run('claim', async () => {
      const existing = await this.liveRecords();
      if (existing.some((r) => r.name === name)) throw conflict(`export ${name} already exists`);
      const samePath = existing.filter((r) => r.filePath === filePath);
      // An overlay export writes its own overlay: the image below it is only read.
      const writer = samePath.find((r) => r.writable && r.overlayPath === null);
      if (writer) throw conflict(`image ${filePath} is already exported writable as ${writer.name}`);
      if (writable && samePath.length > 0) {
        throw conflict(`image ${filePath} is exported read-only as ${samePath[0].name}; it cannot also be exported writable`);
      }
      // Whole seconds: the database column is TIMESTAMP(0), so every store reports the same value.
      const now = new Date(Math.floor(Date.now() / 1000) * 1000);
      const rec: ExportRecord = {
        name,
        kind,
        server: this.launchers[kind].server,
        filePath,
        writable,
        host: this.config.listenAddress,
        port: socketPath === null ? await this.ports.allocate() : null,
        socketPath,
        pid: null,
        nodeName: this.config.nodeName,
        backupJobId,
        restorePointId,
        overlayPath: overlay ? this.paths.overlayFile(name) : null,
        idleTimeoutSeconds: idle,
        lastActiveAt: now,
        tlsMode,
        state: 'starting',
        createdAt: now,
        updatedAt: now,
      };
      await this.store.upsert(rec);
      return rec;
    });

    return this.locks.run(name, async () => {
      let psk: string | undefined;
      try {
        if (record.overlayPath !== null) await this.createOverlay(record.overlayPath, filePath);
        if (record.tlsMode === 'psk') psk = await this.writePsk(name);
        record.pid = await this.launch(record);
        if (record.socketPath !== null) await this.openSocket(record.socketPath);
      } catch (err) {
        if (record.port !== null) this.ports.release(record.port);
        await this.paths.removeFiles(name);
        await this.store.remove(name);
        throw err;
      }
      record.state = 'active';
      record.updatedAt = new Date();
      await this.store.upsert(record);
      this.sizes.set(name, virtualSize);
      this.observer.created(kind);
      this.logger.log(
        `export ${name}: ${record.server} pid ${record.pid} serves ${filePath}${record.overlayPath ? ` through overlay ${record.overlayPath}` : ''} ` +
          `on ${record.socketPath ?? `${record.host}:${record.port}`}${writable || record.overlayPath ? ' (writable)' : ''}${record.tlsMode ? ' (TLS-PSK)' : ''}`,
      );
      const info = await this.info(record);
      return psk === undefined ? info : { ...info, tlsPsk: { identity: PSK_IDENTITY, key: psk } };
    });
  }

  /** A new export's socket opened to NBD_SOCKET_GROUP (until then only this user may connect: qemu-nbd made it 0755). */
  private async openSocket(socketPath: string): Promise<void> {
    if (this.socketGid === null) return;
    await chown(socketPath, -1, this.socketGid);
    await chmod(socketPath, 0o660);
  }

  /**
   * The temporary overlay of a writable instant-access export: a new QCOW2
   * whose backing file is the restore point, so writes never reach the
   * chain. Its size is the restore point's (qemu-img takes it from the backing file).
   */
  private async createOverlay(overlayPath: string, backing: string): Promise<void> {
    await mkdir(this.paths.overlayDir, { recursive: true, mode: 0o700 });
    try {
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', 'qcow2', overlayPath], { timeoutMs: 30_000 });
    } catch (err) {
      const why = err instanceof CommandError ? err.stderr.trim() || err.message : String(err);
      throw internal(`qemu-img create of overlay ${overlayPath} on ${backing} failed: ${why}`);
    }
  }

  /** A fresh 256-bit key in the export's own keys.psk (0600, in a 0700 dir): qemu's tls-creds-psk format "identity:hexkey". */
  private async writePsk(name: string): Promise<string> {
    const key = randomBytes(32).toString('hex');
    const dir = this.paths.pskDir(name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(`${dir}/keys.psk`, `${PSK_IDENTITY}:${key}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  }

  /**
   * Instant-access exports that have an idle timeout: a client connected now
   * counts as activity; an export with no client for longer than its timeout
   * is removed (its overlay discarded). Returns the names removed.
   */
  async sweepIdle(now = new Date()): Promise<string[]> {
    const removed: string[] = [];
    for (const r of await this.liveRecords()) {
      if (r.state !== 'active' || r.idleTimeoutSeconds === null || r.pid === null || r.port === null) continue;
      if ((await pidConnectionCount(r.pid, r.port)) > 0) {
        r.lastActiveAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
        r.updatedAt = now;
        await this.store.upsert(r);
        continue;
      }
      if (now.getTime() - r.lastActiveAt.getTime() >= r.idleTimeoutSeconds * 1000) {
        this.logger.log(`export ${r.name}: no client for ${r.idleTimeoutSeconds} s; removing it`);
        await this.removeFor(r.name, 'idle').catch((err) => this.logger.warn(`removing idle export ${r.name}: ${(err as Error).message}`));
        removed.push(r.name);
      }
    }
    return removed;
  }

  async remove(name: string): Promise<RemoveNbdExportResponse> {
    return this.removeFor(name, 'request');
  }

  private async removeFor(name: string, reason: RemovalReason): Promise<RemoveNbdExportResponse> {
    validateExportName(name);
    return this.locks.run(name, async () => {
      const record = (await this.store.list(this.config.nodeName)).find((r) => r.name === name);
      if (!record) return { name, removed: false };
      record.state = 'removing';
      record.updatedAt = new Date();
      await this.store.upsert(record);
      await this.stopServer(record);
      await this.paths.removeFiles(name);
      if (record.port !== null) this.ports.release(record.port);
      this.sizes.delete(name);
      await this.store.remove(name);
      this.observer.removed(reason);
      this.logger.log(`export ${name} removed`);
      return { name, removed: true };
    });
  }

  async get(name: string): Promise<NbdExportInfo | null> {
    validateExportName(name);
    const record = (await this.liveRecords()).find((r) => r.name === name);
    return record ? this.info(record) : null;
  }

  async list(filter: { backupJobId?: string; restorePointId?: string; restoreOnly?: boolean } = {}): Promise<NbdExportInfo[]> {
    const records = await this.liveRecords();
    const wanted = records.filter(
      (r) =>
        (filter.backupJobId === undefined || r.backupJobId === filter.backupJobId) &&
        (filter.restorePointId === undefined || r.restorePointId === filter.restorePointId) &&
        (!filter.restoreOnly || r.restorePointId !== null),
    );
    return Promise.all(wanted.map((r) => this.info(r)));
  }

  /**
   * Records of this node, minus active exports whose server has died (killed
   * by someone, crashed): those are cleaned up on sight, so callers never get
   * an export that cannot be reached and the image is free to export again.
   */
  private async liveRecords(): Promise<ExportRecord[]> {
    const records = await this.store.list(this.config.nodeName);
    const live: ExportRecord[] = [];
    for (const r of records) {
      if (r.state === 'active' && !(r.pid !== null && (await this.serves(r.pid, r.name)))) {
        this.logger.warn(`export ${r.name}: its ${r.server} (pid ${r.pid}) is gone; removing the export`);
        await this.removeFor(r.name, 'dead').catch((err) => this.logger.warn(`removing dead export ${r.name}: ${(err as Error).message}`));
        continue;
      }
      live.push(r);
    }
    return live;
  }

  /** The file an export serves, when it no longer exists (deleted under its server); null while it does. */
  private async fileGone(record: ExportRecord): Promise<string | null> {
    for (const f of [record.filePath, record.overlayPath]) {
      if (f === null) continue;
      try {
        await stat(f);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return f;
      }
    }
    return null;
  }

  /**
   * Exports whose image file is gone (a backup's partial restore point was
   * removed while this exporter could not be told to stop its server): the
   * server would go on holding the deleted file's space and serve it. Run
   * at start (reconcile) and with every sweep. Returns the names removed.
   */
  async closeOrphans(): Promise<string[]> {
    const removed: string[] = [];
    for (const r of await this.liveRecords()) {
      if (r.state !== 'active') continue;
      const gone = await this.fileGone(r);
      if (!gone) continue;
      this.logger.warn(`export ${r.name}: ${gone} is gone; removing the export (its server held the deleted file)`);
      await this.removeFor(r.name, 'orphan').then(
        () => removed.push(r.name),
        (err) => this.logger.warn(`removing orphaned export ${r.name}: ${(err as Error).message}`),
      );
    }
    return removed;
  }

  /**
   * Exports of this node by kind and state, and the servers alive by kind,
   * for the metrics: read from the records without cleaning up (a scrape
   * changes nothing).
   */
  async counts(): Promise<{ exports: { kind: string; state: string; count: number }[]; servers: { server: string; count: number }[] }> {
    const exports = new Map<string, { kind: string; state: string; count: number }>();
    // Every server kind is reported, 0 included, so "none running" is a sample an alert can see.
    const servers = new Map<string, number>(Object.values(this.launchers).map((l) => [l.server, 0]));
    for (const r of await this.store.list(this.config.nodeName)) {
      const k = `${r.kind}/${r.state}`;
      const e = exports.get(k) ?? { kind: r.kind, state: r.state, count: 0 };
      e.count++;
      exports.set(k, e);
      if (r.pid !== null && (await this.serves(r.pid, r.name))) servers.set(r.server, (servers.get(r.server) ?? 0) + 1);
    }
    return { exports: [...exports.values()], servers: [...servers].map(([server, count]) => ({ server, count })) };
  }

  /** Stop every server of this node (data is flushed by the servers on SIGTERM). */
  async shutdown(): Promise<void> {
    this.stopping = true;
    const records = await this.store.list(this.config.nodeName);
    await Promise.all(records.map((r) => this.remove(r.name).catch((err) => this.logger.warn(`removing ${r.name}: ${(err as Error).message}`))));
  }

  /**
   * Bring records, running servers and conf.d into agreement:
   * - an active record whose server is alive (and really serves that export) is kept;
   * - any other record is dropped (its server, if any, is stopped);
   * - a server process of ours (found by the state dir in its arguments) that
   *   serves no kept export is stopped;
   * - a conf.d file or pid file of no kept export is deleted.
   */
  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { kept: [], removedRecords: [], killedPids: [], removedConfigs: [] };
    const kept = new Set<string>();
    for (const record of await this.store.list(this.config.nodeName)) {
      const gone = await this.fileGone(record);
      if (gone)
        this.logger.warn(
          `reconcile: export ${record.name} serves ${gone}, which is gone (its job cleaned up while this exporter was down); stopping its server`,
        );
      if (!gone && record.state === 'active' && record.pid !== null && (await this.serves(record.pid, record.name))) {
        kept.add(record.name);
        if (record.port !== null) this.ports.reserve(record.port);
        report.kept.push(record.name);
        continue;
      }
      if (record.pid !== null && (await this.serves(record.pid, record.name))) {
        await terminate(record.pid, STOP_GRACE_MS);
        report.killedPids.push(record.pid);
      }
      await this.store.remove(record.name);
      report.removedRecords.push(record.name);
    }
    // Our servers are the processes that carry our run dir in their arguments.
    for (const proc of await findProcesses(`${this.paths.runDir}/`)) {
      const name = this.paths.exportNameFromArgv(proc.argv);
      if (name !== null && kept.has(name)) continue;
      await terminate(proc.pid, STOP_GRACE_MS);
      report.killedPids.push(proc.pid);
    }
    for (const name of new Set([...(await this.paths.configuredExports()), ...(await this.paths.exportsWithFiles())])) {
      if (kept.has(name)) continue;
      await this.paths.removeFiles(name);
      report.removedConfigs.push(name);
    }
    for (const sock of await this.paths.straySockets(kept)) {
      await rm(sock, { force: true });
      report.removedConfigs.push(sock);
    }
    this.observer.reconciled(report);
    if (report.removedRecords.length + report.killedPids.length + report.removedConfigs.length > 0) {
      this.logger.warn(
        `reconcile: kept ${report.kept.length}, dropped records [${report.removedRecords.join(', ')}], ` +
          `stopped pids [${report.killedPids.join(', ')}], deleted configs [${report.removedConfigs.join(', ')}]`,
      );
    }
    return report;
  }

  private async launch(record: ExportRecord): Promise<number> {
    const launcher = this.launchers[record.kind];
    for (let attempt = 1; ; attempt++) {
      const port = record.port ?? 0;
      // A socket file left by a server that died would make qemu-nbd refuse to bind.
      if (record.socketPath !== null) await rm(record.socketPath, { force: true });
      try {
        return await launcher.start({
          name: record.name,
          // A writable instant-access export serves its overlay (the chain below is opened read-only by qemu).
          filePath: record.overlayPath ?? record.filePath,
          writable: record.writable || record.overlayPath !== null,
          host: record.host,
          port,
          ...(record.socketPath !== null ? { socketPath: record.socketPath } : {}),
          ...(record.tlsMode === 'psk' ? { pskDir: this.paths.pskDir(record.name) } : {}),
        });
      } catch (err) {
        if (!(err instanceof PortTakenError) || attempt >= PORT_ATTEMPTS) throw err;
        // Another program bound the port after our bind test: keep it reserved (it is in use) and take the next.
        this.logger.warn(`export ${record.name}: port ${port} was taken, retrying: ${err.message}`);
        record.port = await this.ports.allocate();
        await this.store.upsert(record);
      }
    }
  }

  private async stopServer(record: ExportRecord): Promise<void> {
    if (record.pid !== null && (await this.serves(record.pid, record.name))) {
      await terminate(record.pid, STOP_GRACE_MS);
    }
  }

  /** Is `pid` alive and the server of export `name` (not a recycled pid)? */
  private async serves(pid: number, name: string): Promise<boolean> {
    if (!(await isAlive(pid))) return false;
    const argv = await readArgv(pid);
    return argv !== null && this.paths.exportNameFromArgv(argv) === name;
  }

  private async roots(): Promise<string[]> {
    this.realRoots ??= await Promise.all(this.config.allowedRoots.map((r) => realpath(r).catch(() => r)));
    return this.realRoots;
  }

  private async info(record: ExportRecord): Promise<NbdExportInfo> {
    let size = this.sizes.get(record.name);
    if (size === undefined) {
      size = await inspectImage(record.filePath, record.kind, await this.roots()).catch(() => -1);
      if (size >= 0) this.sizes.set(record.name, size);
    }
    const x509 = record.server === 'qemu-nbd' && record.socketPath === null && this.config.tlsCredsDir !== null;
    const tlsMode = record.tlsMode === 'psk' ? 'psk' : x509 ? 'x509' : null;
    const tls = tlsMode !== null;
    const host = isIP(record.host) === 6 ? `[${record.host}]` : record.host;
    return {
      name: record.name,
      kind: record.kind,
      server: record.server,
      filePath: record.filePath,
      writable: record.writable,
      host: record.host,
      port: record.port,
      socketPath: record.socketPath,
      // libnbd reads the PSK identity from the URI's user part (the key file goes in ?tls-psk-file=).
      uri:
        record.socketPath !== null
          ? `nbd+unix:///${record.name}?socket=${record.socketPath}`
          : `${tls ? 'nbds' : 'nbd'}://${tlsMode === 'psk' ? `${PSK_IDENTITY}@` : ''}${host}:${record.port}/${record.name}`,
      virtualSize: size,
      nodeName: record.nodeName,
      backupJobId: record.backupJobId,
      state: record.state,
      createdAt: record.createdAt.toISOString(),
      tls,
      tlsMode,
      restorePointId: record.restorePointId,
      overlayPath: record.overlayPath,
      idleTimeoutSeconds: record.idleTimeoutSeconds,
      lastActiveAt: record.lastActiveAt.toISOString(),
      expiresAt: record.idleTimeoutSeconds === null ? null : new Date(record.lastActiveAt.getTime() + record.idleTimeoutSeconds * 1000).toISOString(),
    };
  }
}

/** The gid of a group name (getent: /etc/group, or NSS); a name that resolves to nothing stops the exporter's start. */
async function gidOf(group: string): Promise<number> {
  let out: string;
  try {
    out = (await run('getent', ['group', group], { timeoutMs: 10_000 })).stdout;
  } catch (err) {
    const why = err instanceof CommandError ? err.stderr.trim() || `exit code ${err.exitCode}` : String(err);
    throw new Error(`NBD_SOCKET_GROUP=${group}: no such group (getent group ${group}: ${why || 'not found'}); create it or give a numeric gid`);
  }
  const gid = Number(out.split(':')[2]);
  if (!Number.isInteger(gid)) throw new Error(`NBD_SOCKET_GROUP=${group}: getent printed no gid (${out.trim()})`);
  return gid;
}
