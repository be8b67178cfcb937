import { realpath } from 'node:fs/promises';
import { isIP } from 'node:net';
import type {
  CreateNbdExportRequest,
  NbdExportInfo,
  NbdExportKind,
  RemoveNbdExportResponse,
} from '@sendense/contracts';
import type { ExporterConfig } from '../config/exporter-config';
import { conflict, invalid } from '../exporter-error';
import { buildExportName, validateExportName } from '../naming/export-name';
import { inspectImage } from '../servers/image-inspector';
import { NbdServerLauncher } from '../servers/nbd-server-launcher';
import { PortAllocator } from '../servers/port-allocator';
import { findProcesses, isAlive, readArgv, terminate } from '@sendense/process';
import { QemuNbdLauncher } from '../servers/qemu-nbd-launcher';
import { PortTakenError, type ServerLauncher } from '../servers/server-launcher';
import { StatePaths } from '../servers/state-paths';
import type { ExportRecord, ExportRecordStore } from '../store/export-record';
import { validateExportPath } from '../validation/path-validator';
import { KeyedMutex } from './keyed-mutex';

export interface ExporterLogger {
  log(message: string): void;
  warn(message: string): void;
}

const silent: ExporterLogger = { log: () => undefined, warn: () => undefined };
const KINDS: readonly NbdExportKind[] = ['qcow2', 'raw', 'block'];
const JOB_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
/** Creates retried when another program takes the allocated port first. */
const PORT_ATTEMPTS = 4;
/** Per server; SIGTERM of the whole service must finish within 10 s. */
const STOP_GRACE_MS = 6000;

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

  constructor(
    private readonly config: ExporterConfig,
    private readonly store: ExportRecordStore,
    private readonly logger: ExporterLogger = silent,
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
    return this.reconcile();
  }

  async create(request: CreateNbdExportRequest): Promise<NbdExportInfo> {
    if (this.stopping) throw conflict('the exporter is shutting down');
    if (typeof request !== 'object' || request === null) throw invalid('request is missing');
    const kind = request.kind;
    if (!KINDS.includes(kind)) throw invalid(`kind ${JSON.stringify(kind)} is not one of ${KINDS.join(', ')}`);
    const writable = request.writable ?? false;
    if (typeof writable !== 'boolean') throw invalid('writable must be true or false');
    const backupJobId = request.backupJobId ?? null;
    if (backupJobId !== null && (typeof backupJobId !== 'string' || !JOB_ID_RE.test(backupJobId))) {
      throw invalid(`backupJobId ${JSON.stringify(backupJobId)} must be 1-128 letters, digits or ._:-`);
    }
    const name = buildExportName(request);
    const roots = await this.roots();
    const filePath = await validateExportPath(request.filePath, kind, this.config.allowedRoots);
    const virtualSize = await inspectImage(filePath, kind, roots);

    // Check and claim under one lock: name uniqueness and the one-writer rule
    // must hold across concurrent creates. The server starts outside it.
    const record = await this.locks.run('claim', async () => {
      const existing = await this.liveRecords();
      if (existing.some((r) => r.name === name)) throw conflict(`export ${name} already exists`);
      const samePath = existing.filter((r) => r.filePath === filePath);
      const writer = samePath.find((r) => r.writable);
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
        port: await this.ports.allocate(),
        socketPath: null,
        pid: null,
        nodeName: this.config.nodeName,
        backupJobId,
        state: 'starting',
        createdAt: now,
        updatedAt: now,
      };
      await this.store.upsert(rec);
      return rec;
    });

    return this.locks.run(name, async () => {
      try {
        record.pid = await this.launch(record);
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
      this.logger.log(`export ${name}: ${record.server} pid ${record.pid} serves ${filePath} on ${record.host}:${record.port}${writable ? ' (writable)' : ''}`);
      return this.info(record);
    });
  }

  async remove(name: string): Promise<RemoveNbdExportResponse> {
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
      this.logger.log(`export ${name} removed`);
      return { name, removed: true };
    });
  }

  async get(name: string): Promise<NbdExportInfo | null> {
    validateExportName(name);
    const record = (await this.liveRecords()).find((r) => r.name === name);
    return record ? this.info(record) : null;
  }

  async list(filter: { backupJobId?: string } = {}): Promise<NbdExportInfo[]> {
    const records = await this.liveRecords();
    const wanted = records.filter((r) => filter.backupJobId === undefined || r.backupJobId === filter.backupJobId);
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
        await this.remove(r.name).catch((err) => this.logger.warn(`removing dead export ${r.name}: ${(err as Error).message}`));
        continue;
      }
      live.push(r);
    }
    return live;
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
      if (record.state === 'active' && record.pid !== null && (await this.serves(record.pid, record.name))) {
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
    for (const name of await this.paths.configuredExports()) {
      if (kept.has(name)) continue;
      await this.paths.removeFiles(name);
      report.removedConfigs.push(name);
    }
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
      const port = record.port as number;
      try {
        return await launcher.start({ name: record.name, filePath: record.filePath, writable: record.writable, host: record.host, port });
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
    const tls = record.server === 'qemu-nbd' && this.config.tlsCredsDir !== null;
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
      uri: `${tls ? 'nbds' : 'nbd'}://${host}:${record.port}/${record.name}`,
      virtualSize: size,
      nodeName: record.nodeName,
      backupJobId: record.backupJobId,
      state: record.state,
      createdAt: record.createdAt.toISOString(),
      tls,
    };
  }
}
