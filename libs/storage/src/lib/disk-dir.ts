import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { readdirSafe } from './fs-util';
import { IMAGE_RE, JOURNAL_NAME, SIDECAR_RE, imageNameFor, parseDiskDirName, QUARANTINE_DIR, LOCK_DIR } from './layout';
import { readSidecar } from './sidecar';
import type { RestorePointRecord } from './repository';
import type { ConsolidationJournal } from './consolidation-journal';

/** A sidecar found on disk, with where it lives (internal: never leaves the lib). */
export interface Located {
  record: RestorePointRecord;
  dir: string;
  sidecarName: string;
  imageExists: boolean;
}

export interface DiskDirScan {
  vmContextId: string;
  diskIndex: number;
  dir: string;
  located: Located[];
  /** qcow2 files whose sidecar is missing. */
  loneImages: string[];
  /** Sidecars that could not be parsed. */
  badSidecars: string[];
  /** Everything else that is not ours to keep (temp files, merge leftovers). */
  tempFiles: string[];
  journal: ConsolidationJournal | null;
}

export async function readJournal(dir: string): Promise<ConsolidationJournal | null> {
  try {
    return JSON.parse(await fsp.readFile(path.join(dir, JOURNAL_NAME), 'utf8')) as ConsolidationJournal;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function scanDiskDir(dir: string, vmContextId: string, diskIndex: number): Promise<DiskDirScan> {
  const names = await readdirSafe(dir);
  const nameSet = new Set(names);
  const journal = await readJournal(dir);
  const located: Located[] = [];
  const badSidecars: string[] = [];
  const tempFiles: string[] = [];
  const claimed = new Set<string>();
  for (const name of names.sort()) {
    if (SIDECAR_RE.test(name)) {
      try {
        const record = await readSidecar(path.join(dir, name));
        located.push({ record, dir, sidecarName: name, imageExists: nameSet.has(record.imageName) });
        claimed.add(record.imageName);
        claimed.add(imageNameFor(name));
      } catch {
        badSidecars.push(name);
      }
    } else if (name !== JOURNAL_NAME && !IMAGE_RE.test(name)) {
      tempFiles.push(name);
    }
  }
  const loneImages = names.filter((n) => IMAGE_RE.test(n) && !claimed.has(n));
  return { vmContextId, diskIndex, dir, located: dedupe(located, journal), loneImages, badSidecars, tempFiles, journal };
}

/**
 * Between two steps of a consolidation the survivor briefly has two sidecars
 * (old and new name). Readers in other processes must see one: the one the
 * journal names as the new image wins.
 */
function dedupe(located: Located[], journal: ConsolidationJournal | null): Located[] {
  const byId = new Map<string, Located>();
  for (const l of located) {
    const prev = byId.get(l.record.id);
    if (!prev) {
      byId.set(l.record.id, l);
      continue;
    }
    const preferNew = journal && l.record.imageName === journal.newImageName;
    const preferPrev = journal && prev.record.imageName === journal.newImageName;
    if (preferNew && !preferPrev) byId.set(l.record.id, l);
    else if (!preferPrev && l.imageExists && !prev.imageExists) byId.set(l.record.id, l);
  }
  return [...byId.values()];
}

/** Every disk directory of the repository. */
export async function listDiskDirs(root: string, vmContextId?: string): Promise<{ vmContextId: string; diskIndex: number; dir: string }[]> {
  const out: { vmContextId: string; diskIndex: number; dir: string }[] = [];
  const vms = vmContextId ? [vmContextId] : await readdirSafe(root);
  for (const vm of vms) {
    if (vm.startsWith('.') || vm === QUARANTINE_DIR || vm === LOCK_DIR) continue;
    const vmDir = path.join(root, vm);
    const st = await fsp.stat(vmDir).catch(() => null);
    if (!st?.isDirectory()) continue;
    for (const d of await readdirSafe(vmDir)) {
      const idx = parseDiskDirName(d);
      if (idx === null) continue;
      out.push({ vmContextId: vm, diskIndex: idx, dir: path.join(vmDir, d) });
    }
  }
  return out;
}
