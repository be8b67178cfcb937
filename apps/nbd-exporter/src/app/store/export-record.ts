import type { NbdExportRecord } from '@sendense/db';

/** One export as the database records it (libs/db's NbdExportRecord: one definition of the shape). */
export type ExportRecord = NbdExportRecord;

/**
 * Where export records are kept. The exporter is the only writer for its
 * node. Implementations: in memory (tests), a JSON file in the state dir
 * (record store 'file'), and libs/db's NbdExportRepository (table nbd_exports).
 */
export interface ExportRecordStore {
  list(nodeName: string): Promise<ExportRecord[]>;
  upsert(record: ExportRecord): Promise<void>;
  remove(name: string): Promise<void>;
}

export const EXPORT_RECORD_STORE = Symbol('EXPORT_RECORD_STORE');
