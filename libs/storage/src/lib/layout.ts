import * as path from 'node:path';
import { InvalidRequest } from './errors';
import type { RestorePointType } from './repository';

/**
 * Repository layout:
 *   <root>/<vmContextId>/disk-<n>/{full,incr,diff}-<ts>.qcow2 + .json sidecar
 *   <root>/.locks/…           cross-process busy markers (locks.ts)
 *   <root>/.quarantine/…      leftovers moved aside by reconcile
 * Consolidation journals and temp images live in the disk directory, so a
 * rename between them never crosses a file system.
 */

export const LOCK_DIR = '.locks';
export const QUARANTINE_DIR = '.quarantine';
export const JOURNAL_NAME = '.consolidation.journal.json';
export const MERGE_TMP_SUFFIX = '.merge.tmp';

// VM context ids become directory names: only a conservative alphabet, so a
// user-supplied id can never escape the repository or hide as a dot file.
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function assertSafeId(kind: string, value: string): void {
  if (!SAFE_ID.test(value) || value.includes('..')) {
    throw new InvalidRequest(`invalid ${kind} "${value.slice(0, 64)}": use letters, digits, '.', '_' or '-'`);
  }
}

export function assertDiskIndex(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 9999) throw new InvalidRequest(`invalid disk index ${n}`);
}

export function diskDirName(diskIndex: number): string {
  return `disk-${diskIndex}`;
}

export function parseDiskDirName(name: string): number | null {
  const m = /^disk-(\d{1,4})$/.exec(name);
  return m ? Number(m[1]) : null;
}

export function diskDir(root: string, vmContextId: string, diskIndex: number): string {
  assertSafeId('vmContextId', vmContextId);
  assertDiskIndex(diskIndex);
  return path.join(root, vmContextId, diskDirName(diskIndex));
}

const PREFIX: Record<RestorePointType, string> = { full: 'full', incremental: 'incr', differential: 'diff' };

/** 2025-10-04T12:00:00.000Z -> 20251004T120000 (the documented layout). */
export function timestampName(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, '');
}

export function imageBaseName(type: RestorePointType, createdAt: Date, collision = 0): string {
  return `${PREFIX[type]}-${timestampName(createdAt)}${collision ? `-${collision}` : ''}`;
}

export const IMAGE_RE = /^(full|incr|diff)-\d{8}T\d{6}(-\d+)?\.qcow2$/;
export const SIDECAR_RE = /^(full|incr|diff)-\d{8}T\d{6}(-\d+)?\.json$/;

export function sidecarNameFor(imageName: string): string {
  return imageName.replace(/\.qcow2$/, '.json');
}

export function imageNameFor(sidecarName: string): string {
  return sidecarName.replace(/\.json$/, '.qcow2');
}

/** Repository-relative name for reports and logs meant for API callers. */
export function relName(vmContextId: string, diskIndex: number | null, name: string): string {
  return diskIndex === null ? `${vmContextId}/${name}` : `${vmContextId}/${diskDirName(diskIndex)}/${name}`;
}
