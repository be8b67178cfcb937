import { link, mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { extract } from 'tar-stream';
import { run } from '@sendense/process';
import { createTarStream } from './tar-stream';

describe('createTarStream', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp('/tmp/sendense-tar-');
    const long = join(dir, 'tree', 'd'.repeat(120), 'é'.repeat(60));
    await mkdir(long, { recursive: true });
    await writeFile(join(long, `${'n'.repeat(150)}.txt`), 'long names\n');
    await symlink('/etc/passwd', join(dir, 'tree', 'abs-link'));
    await run('mkfifo', [join(dir, 'tree', 'fifo')]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('stores long and non-ASCII names (pax), symlinks as links, and skips FIFOs', async () => {
    const entries: string[] = [];
    const ex = extract();
    const done = new Promise<void>((resolve, reject) => {
      ex.on('entry', (h, body, next) => {
        entries.push(`${h.type}:${h.name}${h.linkname ? `->${h.linkname}` : ''}`);
        body.on('end', next);
        body.resume();
      });
      ex.on('finish', resolve);
      ex.on('error', reject);
    });
    createTarStream(join(dir, 'tree'), 'tree').pipe(ex as unknown as NodeJS.WritableStream);
    await done;
    const d = 'd'.repeat(120);
    const e = 'é'.repeat(60);
    expect(entries).toEqual([
      'directory:tree',
      'symlink:tree/abs-link->/etc/passwd',
      `directory:tree/${d}`,
      `directory:tree/${d}/${e}`,
      `file:tree/${d}/${e}/${'n'.repeat(150)}.txt`,
    ]);
  });

  it('stores a hard-linked file once and its other names as links', async () => {
    const tree = join(dir, 'links');
    await mkdir(join(tree, 'b'), { recursive: true });
    await writeFile(join(tree, 'a.txt'), 'shared\n');
    await link(join(tree, 'a.txt'), join(tree, 'b', 'again.txt'));
    const entries: string[] = [];
    const ex = extract();
    const done = new Promise<void>((resolve, reject) => {
      ex.on('entry', (h, body, next) => {
        let n = 0;
        body.on('data', (c: unknown) => (n += (c as Buffer).length));
        body.on('end', () => {
          entries.push(`${h.type}:${h.name}${h.linkname ? `->${h.linkname}` : ''}:${n}`);
          next();
        });
      });
      ex.on('finish', resolve);
      ex.on('error', reject);
    });
    createTarStream(tree, 'links').pipe(ex as unknown as NodeJS.WritableStream);
    await done;
    expect(entries).toEqual(['directory:links:0', 'file:links/a.txt:7', 'directory:links/b:0', 'link:links/b/again.txt->links/a.txt:0']);
  });

  it('stops producing when the consumer goes away, and reports a missing root', async () => {
    const s = createTarStream(join(dir, 'tree'), 'tree');
    s.destroy();
    await new Promise((r) => s.once('close', r));
    const missing = createTarStream(join(dir, 'nope'), 'nope');
    await expect(
      (async () => {
        for await (const _ of missing) void _;
      })(),
    ).rejects.toThrow(/ENOENT/);
  });
});
