import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile, link, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack as createPack } from 'tar-stream';
import { createTarStream } from '@sendense/restore';
import { unpackTar } from './extract';

/**
 * The CLI's unpacker keeps a guest's symbolic links as links with their
 * targets verbatim (absolute, or leaving the tree), and never writes
 * anything through one: against the gateway's real archive, and against a
 * hostile archive whose entries try to reach outside the output directory.
 */
describe('unpackTar: symbolic links and hard links', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp('/tmp/sendense-cli-links-');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('keeps symbolic link targets verbatim and hard links as links, from the gateway archive', async () => {
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'etc', 'nginx sites'), { recursive: true });
    await writeFile(join(tree, 'etc', 'nginx sites', 'default.conf'), 'server {}\n');
    await symlink('/etc/passwd', join(tree, 'etc', 'passwd-link'));
    await symlink('../../usr/lib/x', join(tree, 'etc', 'nginx sites', 'up-and-out'));
    await symlink('default.conf', join(tree, 'etc', 'nginx sites', 'enabled ü'));
    await symlink('nginx sites', join(tree, 'etc', 'sites'));
    await link(join(tree, 'etc', 'nginx sites', 'default.conf'), join(tree, 'etc', 'hard.conf'));
    const out = join(dir, 'out1');
    await mkdir(out);
    const r = await unpackTar(Readable.from(createTarStream(tree, 'tree')), out);
    expect(r.warnings).toEqual([]);
    expect(await readlink(join(out, 'etc', 'passwd-link'))).toBe('/etc/passwd');
    expect(await readlink(join(out, 'etc', 'nginx sites', 'up-and-out'))).toBe('../../usr/lib/x');
    expect(await readlink(join(out, 'etc', 'nginx sites', 'enabled ü'))).toBe('default.conf');
    expect(await readlink(join(out, 'etc', 'sites'))).toBe('nginx sites');
    expect(await readFile(join(out, 'etc', 'sites', 'enabled ü'), 'utf8')).toBe('server {}\n');
    const a = await stat(join(out, 'etc', 'hard.conf'));
    const b = await stat(join(out, 'etc', 'nginx sites', 'default.conf'));
    expect(a.ino).toBe(b.ino);
    expect(a.nlink).toBe(2);
  });

  it('writes nothing through a link of a hostile archive, and says what it skipped', async () => {
    const outside = join(dir, 'outside');
    await mkdir(outside);
    const p = createPack();
    p.entry({ name: 'x', type: 'directory', mode: 0o755 });
    // A link to a directory outside, then entries that would land inside it through the link.
    p.entry({ name: 'x/door', type: 'symlink', linkname: outside });
    p.entry({ name: 'x/door/planted', type: 'file', mode: 0o644 }, 'planted\n');
    p.entry({ name: 'x/door/planted-link', type: 'symlink', linkname: '/etc/shadow' });
    // A name that climbs out of the output directory.
    p.entry({ name: 'x/../escaped-link', type: 'symlink', linkname: '/etc' });
    p.entry({ name: 'x/real/ok-link', type: 'symlink', linkname: '../door' });
    p.finalize();
    const out = join(dir, 'out2');
    await mkdir(out);
    const r = await unpackTar(Readable.from(p), out);
    expect(await readdir(outside)).toEqual([]);
    expect(await lstat(join(dir, 'escaped-link')).catch(() => null)).toBeNull();
    // The file went into a real directory of that name inside the output; the link that would have
    // shadowed it is not made (and said so); links inside are links, nothing followed.
    expect((await lstat(join(out, 'door'))).isDirectory()).toBe(true);
    expect(await readFile(join(out, 'door', 'planted'), 'utf8')).toBe('planted\n');
    expect(await readlink(join(out, 'door', 'planted-link'))).toBe('/etc/shadow');
    expect(await readlink(join(out, 'real', 'ok-link'))).toBe('../door');
    expect(r.warnings.some((w) => w.includes('x/door:') && w.includes('exists already'))).toBe(true);
    expect(r.warnings.some((w) => w.includes('escaped-link'))).toBe(true);
  });
});
