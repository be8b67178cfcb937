import type { NbdExportFields, NbdExportKind, NbdExportState, NbdServerKind } from '@sendense/contracts';
import type { NbdExport } from '../generated/client';
import type { PrismaClient } from '../prisma-client';

/** One export as the nbd_exports table records it: the contract's fields, with what only the table keeps. */
export interface NbdExportRecord extends NbdExportFields {
  pid: number | null;
  lastActiveAt: Date;
  /** Only a key of its own is recorded; x509 follows from the exporter's settings. */
  tlsMode: 'psk' | null;
  createdAt: Date;
  updatedAt: Date;
}

const KINDS: readonly string[] = ['qcow2', 'raw', 'block'];
const SERVERS: readonly string[] = ['qemu-nbd', 'nbd-server'];
const STATES: readonly string[] = ['starting', 'active', 'removing'];

function toRecord(row: NbdExport): NbdExportRecord {
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

/**
 * The nbd_exports table. The nbd-exporter owns the rows of its node (list,
 * upsert, remove: its ExportRecordStore); other services only read them:
 * maintenance asks which restore points instant-access exports serve, so it
 * never merges or deletes them while they are exported.
 */
export class NbdExportRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** The exports recorded for one node, oldest first. */
  async list(nodeName: string): Promise<NbdExportRecord[]> {
    const rows = await this.prisma.nbdExport.findMany({ where: { nodeName }, orderBy: { createdAt: 'asc' } });
    return rows.map(toRecord);
  }

  /** Records an export (a new one keeps its createdAt; a known one gets every other field). */
  async upsert(r: NbdExportRecord): Promise<void> {
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

  /** Removing a row that is already gone is not an error. */
  async remove(name: string): Promise<void> {
    await this.prisma.nbdExport.deleteMany({ where: { name } });
  }

  /**
   * Restore points of one repository that an instant-access export serves
   * (on any node); with backupId, only that one (an empty list when it is not
   * exported).
   */
  async servedRestorePoints(repositoryId: string, backupId?: string): Promise<string[]> {
    const rows = await this.prisma.nbdExport.findMany({
      where: { restorePointId: backupId ?? { not: null } },
      select: { restorePointId: true },
    });
    const ids = [...new Set(rows.map((r) => r.restorePointId).filter((id): id is string => id !== null))];
    if (ids.length === 0) return [];
    // restore_point_id is not a foreign key (an export may outlive its row for a moment): filter by repository here.
    const inRepo = await this.prisma.backupJob.findMany({ where: { id: { in: ids }, repositoryId }, select: { id: true } });
    return inRepo.map((r) => r.id);
  }
}
