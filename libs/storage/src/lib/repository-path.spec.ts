import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRepositoryPath, realLocation, RepositoryPathRefused } from './repository-path';

describe('checkRepositoryPath', () => {
  let dir: string;
  let root: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'repo-path-'));
    root = join(dir, 'root');
    await mkdir(root);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts a new directory under the root and creates nothing', async () => {
    const real = await checkRepositoryPath(join(root, 'a/b/'), [root]);
    expect(real).toBe(join(await realLocation(root), 'a/b'));
    expect(await readdir(root)).toEqual([]);
  });

  it.each([
    ['outside the root', () => '/etc/sec-y'],
    ['the root itself', () => root],
    ['relative', () => 'backups'],
    ['with ..', () => `${root}/../etc`],
    ['with a NUL', () => `${root}/a\u0000b`],
    ['with a newline', () => `${root}/a\nb`],
  ])('refuses a path %s', async (_what, p) => {
    await expect(checkRepositoryPath(p(), [root])).rejects.toBeInstanceOf(RepositoryPathRefused);
  });

  it('resolves symlinks: a link under the root that points outside is refused', async () => {
    await symlink('/etc', join(root, 'link'));
    await expect(checkRepositoryPath(join(root, 'link/x'), [root])).rejects.toThrow(/really \/etc\/x.*not inside an allowed root/);
  });

  it('refuses the directory of another repository, one inside it, and one containing it', async () => {
    const existing = [{ name: 'first', path: join(root, 'r1') }];
    await expect(checkRepositoryPath(join(root, 'r1'), [root], existing)).rejects.toThrow(/is the directory of repository first/);
    await expect(checkRepositoryPath(join(root, 'r1/sub'), [root], existing)).rejects.toThrow(/lies inside repository first/);
    await mkdir(join(root, 'parent/r2'), { recursive: true });
    await expect(checkRepositoryPath(join(root, 'parent'), [root], [{ name: 'second', path: join(root, 'parent/r2') }])).rejects.toThrow(
      /contains repository second/,
    );
    await expect(checkRepositoryPath(join(root, 'r10'), [root], existing)).resolves.toBe(join(await realLocation(root), 'r10'));
  });

  it('refuses when no root is configured, and "/" is never a root', async () => {
    await expect(checkRepositoryPath('/srv/x', ['/'])).rejects.toThrow(/no allowed repository roots/);
  });
});
