import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, readdir, lstat, readlink, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '@sendense/process';

/**
 * Test fixtures: real disk images with real filesystems, built quickly from
 * raw sparse files, and QCOW2 chains made the way backups make them (a full,
 * then incrementals that hold only the changed clusters over their parent).
 *
 * A guest's content is described as a Model (path -> file/dir/symlink), so the
 * expectation for every restore point is exactly what the guest had then.
 */

export interface BigFile {
  size: number;
  /** Real data at these offsets; the rest is a hole (reads as zeros). */
  chunks: Array<{ offset: number; data: Buffer }>;
}

export type Node = { kind: 'dir' } | { kind: 'file'; data: Buffer } | { kind: 'big'; big: BigFile } | { kind: 'symlink'; target: string };
export type Model = Map<string, Node>;

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function bigFileSha(big: BigFile): string {
  const h = createHash('sha256');
  const zeros = Buffer.alloc(8 * 1024 * 1024);
  let pos = 0;
  const chunks = [...big.chunks].sort((a, b) => a.offset - b.offset);
  const fill = (upto: number) => {
    while (pos < upto) {
      const n = Math.min(zeros.length, upto - pos);
      h.update(n === zeros.length ? zeros : zeros.subarray(0, n));
      pos += n;
    }
  };
  for (const c of chunks) {
    fill(c.offset);
    h.update(c.data);
    pos += c.data.length;
  }
  fill(big.size);
  return h.digest('hex');
}

/** Bytes of the big file in [start, end] (inclusive), built from the model. */
export function bigFileRange(big: BigFile, start: number, end: number): Buffer {
  const out = Buffer.alloc(end - start + 1);
  for (const c of big.chunks) {
    const s = Math.max(start, c.offset);
    const e = Math.min(end + 1, c.offset + c.data.length);
    if (s < e) c.data.copy(out, s - start, s - c.offset, e - c.offset);
  }
  return out;
}

async function writeBig(path: string, big: BigFile): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (const c of big.chunks) await fh.write(c.data, 0, c.data.length, c.offset);
    await fh.truncate(big.size);
  } finally {
    await fh.close();
  }
}

/** Make a mounted directory hold exactly `model` (relative to `dir`), given it held `previous`. */
export async function applyModel(dir: string, model: Model, previous: Model = new Map()): Promise<void> {
  // Deletions first, deepest paths first.
  const gone = [...previous.keys()].filter((p) => !model.has(p)).sort((a, b) => b.length - a.length);
  for (const p of gone) await rm(join(dir, p), { recursive: true, force: true });
  const paths = [...model.keys()].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
  for (const p of paths) {
    const node = model.get(p) as Node;
    const prev = previous.get(p);
    const target = join(dir, p);
    if (prev && JSON.stringify(nodeKey(prev)) === JSON.stringify(nodeKey(node))) continue;
    if (prev && prev.kind !== 'dir') await unlink(target).catch(() => undefined);
    await mkdir(dirname(target), { recursive: true });
    if (node.kind === 'dir') await mkdir(target, { recursive: true });
    else if (node.kind === 'file') await writeFile(target, node.data);
    else if (node.kind === 'big') await writeBig(target, node.big);
    else await symlink(node.target, target);
  }
}

function nodeKey(n: Node): unknown {
  if (n.kind === 'file') return ['file', sha256(n.data)];
  if (n.kind === 'big') return ['big', n.big.size, n.big.chunks.map((c) => [c.offset, sha256(c.data)])];
  if (n.kind === 'symlink') return ['symlink', n.target];
  return ['dir'];
}

/** Read back a directory tree into a comparable summary (path -> description). */
export async function describeTree(dir: string, rel = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await readdir(join(dir, rel))) {
    const p = rel ? `${rel}/${name}` : name;
    if (p === 'lost+found') continue;
    const st = await lstat(join(dir, p));
    if (st.isDirectory()) {
      out.set(p, 'dir');
      for (const [k, v] of await describeTree(dir, p)) out.set(k, v);
    } else if (st.isSymbolicLink()) out.set(p, `symlink:${await readlink(join(dir, p))}`);
    else out.set(p, `file:${st.size}`);
  }
  return out;
}

export function modelSummary(model: Model): Map<string, string> {
  const out = new Map<string, string>();
  for (const [p, n] of model) {
    if (n.kind === 'dir') out.set(p, 'dir');
    else if (n.kind === 'symlink') out.set(p, `symlink:${n.target}`);
    else if (n.kind === 'file') out.set(p, `file:${n.data.length}`);
    else out.set(p, `file:${n.big.size}`);
  }
  return out;
}

export async function attachRw(file: string, offset: number, size: number): Promise<string> {
  const { stdout } = await run('losetup', ['--find', '--show', '--offset', String(offset), '--sizelimit', String(size), file]);
  return stdout.trim();
}

export async function detach(dev: string): Promise<void> {
  await run('losetup', ['--detach', dev]);
}

/** Mount a partition of a raw image read-write, run fn on it, unmount. */
export async function withRwMount(
  raw: string,
  part: { offset: number; size: number },
  fsType: 'ext4' | 'xfs' | 'ntfs-3g',
  workDir: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dev = await attachRw(raw, part.offset, part.size);
  const dir = await mkdtemp(join(workDir, 'rw-'));
  try {
    await run('mount', ['-t', fsType, dev, dir]);
    try {
      await fn(dir);
    } finally {
      await run('umount', [dir]);
    }
  } finally {
    await detach(dev);
    await rm(dir, { recursive: true, force: true });
  }
}

export async function mkfs(raw: string, part: { offset: number; size: number }, fs: 'ext4' | 'xfs' | 'vfat' | 'ntfs'): Promise<void> {
  const dev = await attachRw(raw, part.offset, part.size);
  try {
    if (fs === 'ext4') await run('mkfs.ext4', ['-q', '-F', dev]);
    else if (fs === 'xfs') await run('mkfs.xfs', ['-q', '-f', dev]);
    else if (fs === 'vfat') await run('mkfs.vfat', ['-F', '32', dev]);
    else await run('mkntfs', ['-Q', '-F', '-q', dev]);
  } finally {
    await detach(dev);
  }
}

export interface PartSpec {
  sizeMiB?: number; // omitted = rest of disk
  type: string; // sfdisk type (L, or hex for dos)
}

/** Create a raw sparse disk with a partition table; returns partition byte ranges. */
export async function partitionedRaw(raw: string, sizeMiB: number, label: 'gpt' | 'dos', parts: PartSpec[]): Promise<Array<{ offset: number; size: number }>> {
  await run('truncate', ['-s', `${sizeMiB}M`, raw]);
  const script = [`label: ${label}`, ...parts.map((p) => `,${p.sizeMiB ? `${p.sizeMiB}M` : ''},${p.type}`)].join('\n');
  await run('sfdisk', ['-q', raw], { input: `${script}\n` });
  const { stdout } = await run('sfdisk', ['--json', raw]);
  const table = JSON.parse(stdout) as { partitiontable: { partitions: Array<{ start: number; size: number }> } };
  return table.partitiontable.partitions.map((p) => ({ offset: p.start * 512, size: p.size * 512 }));
}

/** Snapshot the raw disk as a restore point: full QCOW2 or an incremental over `parent`. */
export async function takeRestorePoint(raw: string, out: string, parent?: string): Promise<void> {
  const args = ['convert', '-O', 'qcow2'];
  // With -B only clusters that differ from the parent are written: an
  // incremental as a CBT backup would produce it.
  if (parent) args.push('-B', parent, '-F', 'qcow2');
  args.push(raw, out);
  await run('qemu-img', args);
  await run('qemu-img', ['compare', '-q', raw, out]);
}

export async function fileSha(path: string): Promise<string> {
  return sha256(await readFile(path));
}

export function randomData(n: number): Buffer {
  return randomBytes(n);
}

/** mtools drives FAT without a kernel driver; it needs a UTF-8 locale for non-ASCII names. */
const MTOOLS_ENV = { ...process.env, LC_ALL: 'C.UTF-8', MTOOLS_SKIP_CHECK: '1' };

export async function applyModelFat(raw: string, offset: number, model: Model, previous: Model, workDir: string): Promise<void> {
  const img = `${raw}@@${offset}`;
  const gone = [...previous.keys()].filter((p) => !model.has(p)).sort((a, b) => b.length - a.length);
  for (const p of gone) {
    const cmd = previous.get(p)?.kind === 'dir' ? 'mdeltree' : 'mdel';
    await run(cmd, ['-i', img, `::/${p}`], { env: MTOOLS_ENV });
  }
  const paths = [...model.keys()].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
  const tmp = join(workDir, 'fat-staging.bin');
  for (const p of paths) {
    const node = model.get(p) as Node;
    const prev = previous.get(p);
    if (prev && JSON.stringify(nodeKey(prev)) === JSON.stringify(nodeKey(node))) continue;
    if (node.kind === 'dir') {
      await run('mmd', ['-i', img, `::/${p}`], { env: MTOOLS_ENV });
    } else if (node.kind === 'file') {
      await writeFile(tmp, node.data);
      await run('mcopy', ['-o', '-i', img, tmp, `::/${p}`], { env: MTOOLS_ENV });
    } else {
      throw new Error(`FAT fixtures support files and directories only (${p})`);
    }
  }
  await rm(tmp, { force: true });
}
