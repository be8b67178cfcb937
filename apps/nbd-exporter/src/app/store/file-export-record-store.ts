import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ExportRecord, ExportRecordStore } from './export-record';

type Stored = Omit<ExportRecord, 'createdAt' | 'updatedAt' | 'lastActiveAt'> & { createdAt: string; updatedAt: string; lastActiveAt?: string };

/**
 * Records in one JSON file, rewritten atomically (temp file, fsync, rename)
 * on every change, so they survive a SIGKILL of the exporter. Used until the
 * Prisma store is wired; writes are serialized inside this process.
 */
export class FileExportRecordStore implements ExportRecordStore {
  private records: Map<string, ExportRecord> | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly file: string) {}

  list(nodeName: string): Promise<ExportRecord[]> {
    return this.serialize(async () => {
      const all = await this.load();
      return [...all.values()].filter((r) => r.nodeName === nodeName).map((r) => ({ ...r }));
    });
  }

  upsert(record: ExportRecord): Promise<void> {
    return this.serialize(async () => {
      const all = await this.load();
      all.set(record.name, { ...record });
      await this.save(all);
    });
  }

  remove(name: string): Promise<void> {
    return this.serialize(async () => {
      const all = await this.load();
      if (all.delete(name)) await this.save(all);
    });
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async load(): Promise<Map<string, ExportRecord>> {
    if (this.records) return this.records;
    let parsed: Stored[] = [];
    try {
      parsed = JSON.parse(await readFile(this.file, 'utf8')) as Stored[];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.records = new Map(
      parsed.map((s) => [
        s.name,
        {
          ...s,
          // Files written before instant access have none of its fields.
          restorePointId: s.restorePointId ?? null,
          overlayPath: s.overlayPath ?? null,
          idleTimeoutSeconds: s.idleTimeoutSeconds ?? null,
          tlsMode: s.tlsMode ?? null,
          createdAt: new Date(s.createdAt),
          updatedAt: new Date(s.updatedAt),
          lastActiveAt: new Date(s.lastActiveAt ?? s.createdAt),
        },
      ]),
    );
    return this.records;
  }

  private async save(all: Map<string, ExportRecord>): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify([...all.values()], null, 2));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
  }
}
