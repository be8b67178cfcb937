import type { NbdExportKind, NbdExportState, NbdServerKind } from '@sendense/contracts';

/** One export as the database records it (mirrors the NbdExport Prisma model). */
export interface ExportRecord {
  name: string;
  kind: NbdExportKind;
  server: NbdServerKind;
  filePath: string;
  writable: boolean;
  host: string;
  port: number | null;
  socketPath: string | null;
  pid: number | null;
  nodeName: string;
  backupJobId: string | null;
  /** Instant access: the restore point served (maintenance holds it while the record exists). */
  restorePointId: string | null;
  /** Writable instant access: the temporary overlay the server writes (deleted with the export). */
  overlayPath: string | null;
  idleTimeoutSeconds: number | null;
  lastActiveAt: Date;
  tlsMode: 'psk' | null;
  state: NbdExportState;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * Where export records are kept. The exporter is the only writer for its
 * node. Implementations: in memory (tests), a JSON file in the state dir
 * (until libs/db lands), Prisma (table nbd_exports).
 */
export interface ExportRecordStore {
  list(nodeName: string): Promise<ExportRecord[]>;
  upsert(record: ExportRecord): Promise<void>;
  remove(name: string): Promise<void>;
}

export const EXPORT_RECORD_STORE = Symbol('EXPORT_RECORD_STORE');
