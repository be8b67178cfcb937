import type { NbdExportKind, NbdExportState, NbdServerKind } from '@sendense/contracts';
import type { PrismaClient } from '@sendense/db';
import type { ExportRecord, ExportRecordStore } from './export-record';

const KINDS: readonly string[] = ['qcow2', 'raw', 'block'];
const SERVERS: readonly string[] = ['qemu-nbd', 'nbd-server'];
const STATES: readonly string[] = ['starting', 'active', 'removing'];

type Row = Awaited<ReturnType<PrismaClient['nbdExport']['findMany']>>[number];

function toRecord(row: Row): ExportRecord {
  // Columns are plain strings in the schema; a value this version does not know
  // is read as 'removing', so reconcile drops the row instead of trusting it.
  const known = KINDS.includes(row.kind) && SERVERS.includes(row.server) && STATES.includes(row.state);
  return {
    name: row.name,
    kind: (KINDS.includes(row.kind) ? row.kind : 'raw') as NbdExportKind,
    server: (SERVERS.includes(row.server) ? row.server : 'nbd-server') as NbdServerKind,
    filePath: row.filePath,
    writable: row.writable,
    host: row.host,
    port: row.port,
    socketPath: row.socketPath,
    pid: row.pid,
    nodeName: row.nodeName,
    backupJobId: row.backupJobId,
    restorePointId: row.restorePointId,
    overlayPath: row.overlayPath,
    idleTimeoutSeconds: row.idleTimeoutSeconds,
    lastActiveAt: row.lastActiveAt ?? row.createdAt,
    tlsMode: row.tlsMode === 'psk' ? 'psk' : null,
    state: (known ? row.state : 'removing') as NbdExportState,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** Records in the nbd_exports table (model NbdExport of libs/db). */
export class PrismaExportRecordStore implements ExportRecordStore {
  constructor(private readonly prisma: PrismaClient) {}

  async list(nodeName: string): Promise<ExportRecord[]> {
    const rows = await this.prisma.nbdExport.findMany({ where: { nodeName }, orderBy: { createdAt: 'asc' } });
    return rows.map(toRecord);
  }

  async upsert(r: ExportRecord): Promise<void> {
    const data = {
      kind: r.kind,
      server: r.server,
      filePath: r.filePath,
      writable: r.writable,
      host: r.host,
      port: r.port,
      socketPath: r.socketPath,
      pid: r.pid,
      nodeName: r.nodeName,
      backupJobId: r.backupJobId,
      restorePointId: r.restorePointId,
      overlayPath: r.overlayPath,
      idleTimeoutSeconds: r.idleTimeoutSeconds,
      lastActiveAt: r.lastActiveAt,
      tlsMode: r.tlsMode,
      state: r.state,
    };
    await this.prisma.nbdExport.upsert({
      where: { name: r.name },
      create: { name: r.name, ...data, createdAt: r.createdAt },
      update: data,
    });
  }

  async remove(name: string): Promise<void> {
    // deleteMany: removing a row that is already gone is not an error.
    await this.prisma.nbdExport.deleteMany({ where: { name } });
  }
}
