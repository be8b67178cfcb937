import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from '@sendense/process';
import { compareImages } from '../src/lib/qemu-img';
import type { LocalQcow2Repository } from '../src/lib/local-repository';
import type { RestorePointRecord, RestorePointType } from '../src/lib/repository';

export const MiB = 1024 * 1024;
export const DISK = 8 * MiB;

export interface Write {
  /** Byte pattern; null writes zeroes (WRITE_ZEROES, must hide the backing data). */
  pattern: number | null;
  off: number;
  len: number;
}

export async function tempDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), `sendense-${prefix}-`));
}

/** Write guest data into a qcow2 image, as the Capture Agent would over NBD. */
export async function writeImage(image: string, writes: readonly Write[]): Promise<void> {
  if (!writes.length) return;
  const cmds = writes.flatMap((w) => ['-c', w.pattern === null ? `write -z ${w.off} ${w.len}` : `write -P ${w.pattern} ${w.off} ${w.len}`]);
  await run('qemu-io', ['-f', 'qcow2', ...cmds, image]);
}

/** In-memory model of what each restore point must read back as. */
export class DiskModel {
  readonly refs = new Map<string, string>();
  constructor(
    readonly refDir: string,
    readonly size = DISK,
  ) {}

  async snapshot(id: string, base: Buffer | null, writes: readonly Write[]): Promise<Buffer> {
    const buf = base ? Buffer.from(base) : Buffer.alloc(this.size);
    for (const w of writes) buf.fill(w.pattern ?? 0, w.off, w.off + w.len);
    const ref = path.join(this.refDir, `${id}.raw`);
    await fsp.writeFile(ref, buf);
    this.refs.set(id, ref);
    return buf;
  }
}

export interface Backup {
  record: RestorePointRecord;
  content: Buffer;
}

let clock = Date.UTC(2025, 9, 4, 12, 0, 0);
export function nextTime(stepMs = 3600_000): Date {
  clock += stepMs;
  return new Date(clock);
}

export async function backup(
  repo: LocalQcow2Repository,
  model: DiskModel,
  opts: { vm?: string; disk?: number; type: RestorePointType; parent?: Backup; writes: Write[]; createdAt?: Date },
): Promise<Backup> {
  const handle = await repo.createRestorePoint({
    vmContextId: opts.vm ?? 'vm-1',
    diskIndex: opts.disk ?? 0,
    diskKey: '2000',
    type: opts.type,
    parentId: opts.parent?.record.id,
    virtualSize: model.size,
    expectedBytes: opts.writes.reduce((s, w) => s + w.len, 0),
    createdAt: opts.createdAt ?? nextTime(),
  });
  const target = await repo.localTarget(handle.id);
  await writeImage(target.imagePath, opts.writes);
  const record = await repo.commit(handle.id, { changeId: `cid-${handle.id.slice(0, 8)}` });
  // Tests pass the full as the parent of a differential, so the parent's
  // content is the base in both cases.
  const base = opts.type === 'full' ? null : (opts.parent as Backup).content;
  const content = await model.snapshot(record.id, base, opts.writes);
  return { record, content };
}

/** Every listed restore point reads back exactly as the model says. */
export async function expectAllReadBack(repo: LocalQcow2Repository, model: DiskModel, ids?: string[]): Promise<string[]> {
  const listed = (await repo.list()).map((r) => r.id);
  const bad: string[] = [];
  for (const id of ids ?? listed) {
    const ref = model.refs.get(id);
    if (!ref) throw new Error(`no reference for ${id}`);
    const t = await repo.localTarget(id);
    if (!(await compareImages(t.imagePath, ref, 'qcow2', 'raw'))) bad.push(id);
  }
  return bad;
}

/** Flip one byte of guest data inside the image file (tampering). */
export async function corruptDataByte(image: string, guestOffset: number): Promise<void> {
  const r = await run('qemu-img', ['map', '--output=json', '-f', 'qcow2', image]);
  const extents = JSON.parse(r.stdout) as { start: number; length: number; depth: number; data: boolean; offset?: number }[];
  const e = extents.find((x) => x.depth === 0 && x.data && x.start <= guestOffset && guestOffset < x.start + x.length);
  if (!e || e.offset === undefined) throw new Error('no data at that offset in this layer');
  const fh = await fsp.open(image, 'r+');
  try {
    const pos = e.offset + (guestOffset - e.start);
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, pos);
    b[0] ^= 0xff;
    await fh.write(b, 0, 1, pos);
  } finally {
    await fh.close();
  }
}
