import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Daemon } from '@sendense/process';
import { LocalQcow2Repository, diskWriterLockId } from './local-repository';
import { backup, DiskModel, expectAllReadBack, MiB, tempDir, writeImage, type Backup } from '../../test/helpers';
import type { ReconcileEntry } from './repository';

jest.setTimeout(60_000);

async function deadPid(): Promise<number> {
  const d = await Daemon.start('true', []);
  await d.exited;
  return d.pid as number;
}

/** Pretend the process holding these locks died (its pid no longer exists). */
async function orphanLocks(root: string, id: string): Promise<void> {
  const dir = path.join(root, '.locks', id);
  const pid = await deadPid();
  for (const n of await fsp.readdir(dir)) {
    const f = path.join(dir, n);
    const j = JSON.parse(await fsp.readFile(f, 'utf8'));
    await fsp.writeFile(f, JSON.stringify({ ...j, pid }));
  }
}

describe('reconcile: leftovers of crashes', () => {
  let root: string;
  let model: DiskModel;
  let repo: LocalQcow2Repository;
  let full: Backup, i1: Backup;
  let dir: string;

  beforeAll(async () => {
    root = await tempDir('recon');
    model = new DiskModel(await tempDir('recon-refs'));
    repo = await LocalQcow2Repository.open({ root, space: { marginBytes: 0 } });
    full = await backup(repo, model, { type: 'full', writes: [{ pattern: 0x11, off: 0, len: MiB }] });
    i1 = await backup(repo, model, { type: 'incremental', parent: full, writes: [{ pattern: 0x22, off: MiB, len: MiB }] });
    dir = path.join(root, 'vm-1', 'disk-0');
  });
  afterAll(async () => {
    await fsp.rm(root, { recursive: true, force: true });
    await fsp.rm(model.refDir, { recursive: true, force: true });
  });

  it('finds and sorts out every kind of leftover, dry run first', async () => {
    // A writer that died mid-write (its locks are stale).
    const other = new LocalQcow2Repository({ root, space: { marginBytes: 0 } });
    const dead = await other.createRestorePoint({
      vmContextId: 'vm-1',
      diskIndex: 0,
      diskKey: '2000',
      type: 'incremental',
      parentId: i1.record.id,
      virtualSize: model.size,
    });
    await writeImage((await other.localTarget(dead.id)).imagePath, [{ pattern: 0x33, off: 0, len: 64 * 1024 }]);
    await orphanLocks(root, dead.id);
    await orphanLocks(root, diskWriterLockId('vm-1', 0));
    // A writer still alive (this process holds its lock).
    const alive = await repo.createRestorePoint({
      vmContextId: 'vm-1',
      diskIndex: 0,
      diskKey: '2000',
      type: 'incremental',
      parentId: i1.record.id,
      virtualSize: model.size,
    });
    // An image without sidecar, a sidecar without image, a broken chain, temp files.
    await fsp.copyFile(path.join(dir, i1.record.imageName), path.join(dir, 'incr-20990101T000000.qcow2'));
    const sc = JSON.parse(await fsp.readFile(path.join(dir, i1.record.imageName.replace('.qcow2', '.json')), 'utf8'));
    await fsp.writeFile(path.join(dir, 'incr-20990102T000000.json'), JSON.stringify({ ...sc, id: 'lost-image', imageName: 'incr-20990102T000000.qcow2' }));
    await fsp.copyFile(path.join(dir, i1.record.imageName), path.join(dir, 'incr-20990103T000000.qcow2'));
    await fsp.writeFile(
      path.join(dir, 'incr-20990103T000000.json'),
      JSON.stringify({ ...sc, id: 'orphan-child', parentId: 'ghost', imageName: 'incr-20990103T000000.qcow2' }),
    );
    await fsp.writeFile(path.join(dir, 'diff-20990104T000000.json'), '{ not json');
    const oldTmp = path.join(dir, '.incr-x.json.abcd.tmp');
    await fsp.writeFile(oldTmp, '{}');
    await fsp.utimes(oldTmp, new Date(0), new Date(0));
    await fsp.writeFile(path.join(dir, '.incr-y.qcow2.merge.tmp'), 'x');

    const dry = await repo.reconcile({ dryRun: true });
    const byFinding = (es: ReconcileEntry[]) => es.map((e) => `${e.finding}:${e.action}:${e.restorePointId ?? e.name.split('/').pop()}`).sort();
    expect(byFinding(dry.entries)).toEqual(
      [
        `half-written:would-delete:${dead.id}`,
        `half-written:skipped-busy:${alive.id}`,
        'image-without-sidecar:would-quarantine:incr-20990101T000000.qcow2',
        'sidecar-without-image:would-quarantine:lost-image',
        'sidecar-without-image:would-quarantine:diff-20990104T000000.json',
        'temp-file:would-delete:.incr-x.json.abcd.tmp',
        'temp-file:would-delete:.incr-y.qcow2.merge.tmp',
        'chain-broken:reported:orphan-child',
      ].sort(),
    );
    expect(dry.entries.every((e) => !e.name.startsWith('/'))).toBe(true);
    expect(await fsp.stat(path.join(dir, 'incr-20990101T000000.qcow2'))).toBeTruthy();

    const real = await repo.reconcile();
    expect(byFinding(real.entries)).toEqual(
      byFinding(dry.entries)
        .map((s) => s.replace('would-', '').replace('delete', 'deleted').replace('quarantine', 'quarantined'))
        .sort(),
    );
    const names = await fsp.readdir(dir);
    expect(names).not.toContain('incr-20990101T000000.qcow2');
    expect(names).not.toContain('incr-20990102T000000.json');
    expect(names.filter((n) => n.startsWith('.'))).toEqual([]);
    expect(names).not.toContain((await repo.list({ includeWriting: true })).find((r) => r.id === dead.id)?.imageName ?? 'none');
    const quarantined = await fsp.readdir(path.join(root, '.quarantine', 'vm-1', 'disk-0'));
    expect(quarantined).toHaveLength(3);
    expect((await repo.list({ includeWriting: true })).map((r) => r.id)).not.toContain(dead.id);
    await repo.abort(alive.id, 'test');
    await fsp.rm(path.join(dir, 'incr-20990103T000000.json'));
    await fsp.rm(path.join(dir, 'incr-20990103T000000.qcow2'));
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    expect((await repo.reconcile()).entries).toEqual([]);
    expect((await repo.importRepository()).map((r) => r.id)).toEqual([full.record.id, i1.record.id]);
  });

  it('rolls back a consolidation interrupted before its commit point', async () => {
    const pid = await deadPid();
    await fsp.copyFile(path.join(dir, i1.record.imageName), path.join(dir, `.${i1.record.imageName}.merge.tmp`));
    await fsp.writeFile(
      path.join(dir, '.consolidation.journal.json'),
      JSON.stringify({
        version: 1,
        jobId: 'j',
        phase: 'building',
        pid,
        hostname: (await import('node:os')).hostname(),
        startedAt: new Date().toISOString(),
        survivorId: i1.record.id,
        survivorOldImage: i1.record.imageName,
        newImageName: 'full-x.qcow2',
        tmpName: `.${i1.record.imageName}.merge.tmp`,
        newBackingName: null,
        removed: [{ id: full.record.id, imageName: full.record.imageName }],
        children: [],
        newRecord: null,
      }),
    );
    expect((await repo.health()).pendingConsolidations).toBe(1);
    const r = await repo.reconcile();
    expect(r.entries.map((e) => `${e.finding}:${e.action}`)).toEqual(['consolidation-journal:rolled-back']);
    expect((await fsp.readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
  });
});
