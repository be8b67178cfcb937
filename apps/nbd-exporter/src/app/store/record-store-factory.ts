import { join } from 'node:path';
import { createPrismaClient, NbdExportRepository } from '@sendense/db';
import type { ExporterConfig } from '../config/exporter-config';
import type { ExportRecordStore } from './export-record';
import { FileExportRecordStore } from './file-export-record-store';

export interface OpenedRecordStore {
  store: ExportRecordStore;
  close(): Promise<void>;
}

/** The store the config asks for; close() releases the database connection. */
export function openRecordStore(config: ExporterConfig): OpenedRecordStore {
  if (config.recordStore === 'file') {
    return { store: new FileExportRecordStore(join(config.stateDir, 'exports.json')), close: async () => undefined };
  }
  const prisma = createPrismaClient(config.databaseUrl);
  return { store: new NbdExportRepository(prisma), close: () => prisma.$disconnect() };
}
