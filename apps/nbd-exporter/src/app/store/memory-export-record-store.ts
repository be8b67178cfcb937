import type { ExportRecord, ExportRecordStore } from './export-record';

/** Records kept in process memory: lost on restart, for tests. */
export class MemoryExportRecordStore implements ExportRecordStore {
  private readonly records = new Map<string, ExportRecord>();

  async list(nodeName: string): Promise<ExportRecord[]> {
    return [...this.records.values()].filter((r) => r.nodeName === nodeName).map((r) => ({ ...r }));
  }

  async upsert(record: ExportRecord): Promise<void> {
    this.records.set(record.name, { ...record });
  }

  async remove(name: string): Promise<void> {
    this.records.delete(name);
  }
}
