import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from './fs-util';
import { CorruptImage } from './errors';
import type { RestorePointRecord } from './repository';
import { sidecarNameFor } from './layout';

/** Sidecars are the durable truth of a restore point; the database mirrors them. */

export function sidecarPath(dir: string, imageName: string): string {
  return path.join(dir, sidecarNameFor(imageName));
}

export async function writeSidecar(dir: string, record: RestorePointRecord): Promise<void> {
  await writeFileAtomic(sidecarPath(dir, record.imageName), JSON.stringify(record, null, 2) + '\n');
}

export async function readSidecar(file: string): Promise<RestorePointRecord> {
  const text = await fsp.readFile(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CorruptImage('(unknown)', 'sidecar is not valid JSON', { localPath: file, cause: err });
  }
  const rec = parsed as Partial<RestorePointRecord>;
  const problems: string[] = [];
  if (typeof rec.id !== 'string') problems.push('id');
  if (typeof rec.vmContextId !== 'string') problems.push('vmContextId');
  if (typeof rec.diskIndex !== 'number') problems.push('diskIndex');
  if (rec.type !== 'full' && rec.type !== 'incremental' && rec.type !== 'differential') problems.push('type');
  if (rec.state !== 'writing' && rec.state !== 'committed') problems.push('state');
  if (typeof rec.imageName !== 'string' || rec.imageName.includes('/')) problems.push('imageName');
  if (problems.length) {
    throw new CorruptImage(String(rec.id ?? '(unknown)'), `sidecar has invalid fields: ${problems.join(', ')}`, {
      localPath: file,
    });
  }
  return {
    schemaVersion: 1,
    diskKey: '',
    parentId: null,
    changeId: null,
    virtualSize: 0,
    allocatedBytes: 0,
    backingImageName: null,
    checksum: null,
    committedAt: null,
    lastVerification: null,
    mergedFrom: [],
    metadata: {},
    ...rec,
  } as RestorePointRecord;
}
