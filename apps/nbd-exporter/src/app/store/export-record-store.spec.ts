import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// A fresh, migrated database for the suite, dropped afterwards.
import { NbdExportRepository } from '@sendense/db';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import type { ExportRecord, ExportRecordStore } from './export-record';
import { FileExportRecordStore } from './file-export-record-store';
import { MemoryExportRecordStore } from './memory-export-record-store';

jest.setTimeout(60_000);

const at = new Date('2026-01-02T03:04:05Z');
const rec = (name: string, over: Partial<ExportRecord> = {}): ExportRecord => ({
  name,
  kind: 'qcow2',
  server: 'qemu-nbd',
  filePath: `/var/lib/sendense/${name}.qcow2`,
  writable: true,
  host: '127.0.0.1',
  port: 10810,
  socketPath: null,
  pid: 1234,
  nodeName: 'node-a',
  backupJobId: 'job-1',
  restorePointId: null,
  overlayPath: null,
  idleTimeoutSeconds: null,
  lastActiveAt: at,
  tlsMode: null,
  state: 'starting',
  createdAt: at,
  updatedAt: at,
  ...over,
});

/** The same contract for every store. */
function contract(label: string, open: () => Promise<{ store: ExportRecordStore; reopen?: () => ExportRecordStore; close(): Promise<void> }>) {
  describe(label, () => {
    let h: Awaited<ReturnType<typeof open>>;
    beforeAll(async () => {
      h = await open();
    });
    afterAll(() => h.close());

    it('upserts, lists per node, removes idempotently', async () => {
      await h.store.upsert(rec('a'));
      await h.store.upsert(rec('b', { nodeName: 'node-b', kind: 'raw', server: 'nbd-server', port: null, pid: null, backupJobId: null }));
      await h.store.upsert(rec('a', { state: 'active', pid: 999 }));
      const a = await h.store.list('node-a');
      expect(a).toEqual([expect.objectContaining({ name: 'a', state: 'active', pid: 999, writable: true, createdAt: at })]);
      expect(await h.store.list('node-b')).toEqual([expect.objectContaining({ name: 'b', port: null, backupJobId: null, kind: 'raw' })]);
      await h.store.remove('a');
      await h.store.remove('a');
      expect(await h.store.list('node-a')).toEqual([]);
      if (h.reopen) expect(await h.reopen().list('node-b')).toHaveLength(1);
    });

    it('keeps the instant-access fields (restore point, overlay, idle timeout, last activity, TLS-PSK)', async () => {
      const later = new Date('2026-01-02T04:00:00Z');
      await h.store.upsert(
        rec('ia', {
          restorePointId: 'rp-1',
          overlayPath: '/var/lib/sendense/nbd/overlays/ia.qcow2',
          idleTimeoutSeconds: 600,
          lastActiveAt: later,
          tlsMode: 'psk',
        }),
      );
      const want = expect.objectContaining({
        restorePointId: 'rp-1',
        overlayPath: '/var/lib/sendense/nbd/overlays/ia.qcow2',
        idleTimeoutSeconds: 600,
        lastActiveAt: later,
        tlsMode: 'psk',
      });
      expect(await h.store.list('node-a')).toEqual([want]);
      if (h.reopen) expect(await h.reopen().list('node-a')).toEqual([want]);
      await h.store.remove('ia');
    });
  });
}

contract('MemoryExportRecordStore', async () => ({ store: new MemoryExportRecordStore(), close: async () => undefined }));

contract('FileExportRecordStore (survives a restart)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nbdexp-store-'));
  const file = join(dir, 'exports.json');
  return { store: new FileExportRecordStore(file), reopen: () => new FileExportRecordStore(file), close: () => rm(dir, { recursive: true, force: true }) };
});

contract('NbdExportRepository of libs/db (MariaDB, table nbd_exports)', async () => {
  const db: TestDatabase = await createTestDatabase();
  return { store: new NbdExportRepository(db.prisma), reopen: () => new NbdExportRepository(db.prisma), close: () => db.drop() };
});
