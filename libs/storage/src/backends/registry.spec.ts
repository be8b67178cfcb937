import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  InvalidRequest,
  LocalQcow2Repository,
  StorageRegistry,
  UnusableRepository,
  exposesLocalFiles,
  type BackupRepository,
  type StorageBackend,
} from '../index';
import { backup, DiskModel, MiB, tempDir } from '../../test/helpers';

jest.setTimeout(60_000);

describe('StorageRegistry: the backend is chosen by repository_type', () => {
  let root: string;
  const row = () => ({ id: 'r1', name: 'primary', repositoryType: 'local', config: { path: root } });

  beforeAll(async () => {
    root = await tempDir('registry');
  });
  afterAll(() => fsp.rm(root, { recursive: true, force: true }));

  it('opens a local row once per process and exposes local files', async () => {
    const reg = new StorageRegistry({ allowedRoots: [tmpdir()] });
    const a = await reg.open(row());
    expect(a).toBeInstanceOf(LocalQcow2Repository);
    expect(await reg.open(row())).toBe(a);
    expect(exposesLocalFiles(a)).toBe(true);
    // A moved repository (new path) is a new instance.
    const moved = await tempDir('registry-moved');
    expect(await reg.open({ ...row(), config: { path: moved } })).not.toBe(a);
  });

  it('refuses an unknown type and a bad config with UnusableRepository (a 400, never retried)', async () => {
    const reg = new StorageRegistry({ allowedRoots: [tmpdir()] });
    const s3 = reg.open({ ...row(), repositoryType: 's3' });
    await expect(s3).rejects.toThrow(UnusableRepository);
    await expect(s3).rejects.toThrow('repository primary is of type s3; this build supports local');
    await expect(reg.open({ ...row(), config: { path: 'relative/dir' } })).rejects.toThrow(/no absolute "path"/);
    await expect(reg.open({ ...row(), config: null })).rejects.toBeInstanceOf(InvalidRequest);
    // Outside REPOSITORY_ALLOWED_ROOTS: refused before anything is created there.
    await expect(reg.open({ ...row(), id: 'r9', config: { path: '/usr/share/sendense-nowhere' } })).rejects.toThrow(
      /repository primary cannot be used: .*not inside an allowed root/,
    );
  });

  it('locates the image of a restore point from the key the repository gave it', async () => {
    const reg = new StorageRegistry({ allowedRoots: [tmpdir()] });
    const repo = (await reg.open(row())) as LocalQcow2Repository;
    const model = new DiskModel(await tempDir('registry-refs'));
    const { record } = await backup(repo, model, { type: 'full', writes: [{ pattern: 0x5a, off: 0, len: 1 * MiB }] });
    const key = repo.imageKey(record);
    expect(key).toBe(`vm-1/disk-0/${record.imageName}`);
    const loc = reg.locateImage(row(), key);
    expect(loc).toEqual({ kind: 'local-file', path: (await repo.localTarget(record.id)).imagePath, format: 'qcow2' });
    expect((await fsp.stat(loc.path)).isFile()).toBe(true);
  });

  it('never locates outside the repository, whatever the row says', () => {
    const reg = new StorageRegistry({ allowedRoots: [tmpdir()] });
    for (const bad of [
      '../etc/passwd',
      'vm-1/disk-0/../../x.qcow2',
      '/abs/disk-0/full-20250101T000000.qcow2',
      'vm-1/disk-0/notes.txt',
      '..x/disk-0/full-20250101T000000.qcow2',
    ]) {
      expect(() => reg.locateImage(row(), bad)).toThrow(InvalidRequest);
    }
  });

  it('a new backend is one more entry: the registry routes its type to it', async () => {
    const opened: string[] = [];
    const dir = await tempDir('registry-extra');
    const nfs: StorageBackend = {
      repositoryType: 'nfs',
      validate: () => undefined,
      identity: () => dir,
      open: async (r) => {
        opened.push(r.id);
        return LocalQcow2Repository.open({ root: path.join(dir, 'mnt') });
      },
      locateImage: (_r, key) => ({ kind: 'local-file', path: path.join(dir, 'mnt', key), format: 'qcow2' }),
    };
    const reg = new StorageRegistry({ allowedRoots: [tmpdir()], backends: [nfs] });
    const repo: BackupRepository = await reg.open({ id: 'n1', name: 'nas', repositoryType: 'nfs', config: {} });
    expect(opened).toEqual(['n1']);
    expect(repo.kind).toBe('local-qcow2');
    await expect(reg.open(row())).rejects.toThrow('this build supports nfs');
  });
});
