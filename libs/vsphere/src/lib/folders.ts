import { VSphereError } from './errors';
import { listVmsIn } from './inventory';
import { retrieveProperties, withContainerView } from './property-collector';
import type { VSphereSession } from './session';
import type { VmInfo } from './types';
import { arr, child, text, toMoRef, type MoRef } from './xml';

/** Longest folder path accepted (vCenter names are at most 80 characters; a path of a few levels fits). */
export const MAX_FOLDER_PATH = 512;

/**
 * A folder path as users write it, split into names: `prod/web`. Names are
 * matched exactly (case-sensitive) against the names vCenter reports, which
 * stores `%`, `/` and `\` in a name as `%25`, `%2f`, `%5c`: a folder called
 * `a/b` is written `a%2fb`. Leading and trailing slashes are ignored; empty
 * names, `.`/`..`, control characters and paths over MAX_FOLDER_PATH are refused.
 */
export function parseFolderPath(path: string): string[] {
  if (path.length > MAX_FOLDER_PATH) throw new InvalidFolderPathError(path, `longer than ${MAX_FOLDER_PATH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) throw new InvalidFolderPathError(path, 'it contains control characters');
  const parts = path.replace(/^\/+|\/+$/g, '').split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) throw new InvalidFolderPathError(path, 'it has an empty, "." or ".." folder name');
  return parts;
}

export class InvalidFolderPathError extends VSphereError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`folder path ${JSON.stringify(path)} is not valid: ${reason} (write it like prod/web, below the datacenter's VM folder)`);
    this.name = 'InvalidFolderPathError';
  }
}

/** A folder path that names no folder; says where the walk stopped and what exists there. */
export class FolderNotFoundError extends VSphereError {
  constructor(
    readonly path: string,
    /** The part of the path that was found (the datacenter first when there are several). */
    readonly found: string[],
    /** What was not found below it (`folder web`, `datacenter dc2`). */
    readonly missing: string,
    /** The names that do exist at that level (folders, or datacenters). */
    readonly existing: string[],
  ) {
    const where = found.length ? `in ${found.join('/')}` : 'at the top';
    const what = existing.length ? `there are: ${existing.slice(0, 20).join(', ')}${existing.length > 20 ? `, … (${existing.length})` : ''}` : 'there is none';
    super(`folder path ${path}: no ${missing} ${where}; ${what}`);
    this.name = 'FolderNotFoundError';
  }
}

interface Named {
  ref: MoRef;
  name: string;
}

async function namesOf(session: VSphereSession, type: string, refs: MoRef[]): Promise<Named[]> {
  if (refs.length === 0) return [];
  const objs = await retrieveProperties(session, { type, pathSet: ['name'], objects: refs });
  return objs.map((o) => ({ ref: o.obj, name: text(o.props['name']) ?? '' }));
}

async function childFolders(session: VSphereSession, folder: MoRef): Promise<Named[]> {
  const [f] = await retrieveProperties(session, { type: 'Folder', pathSet: ['childEntity'], objects: [folder] });
  const refs = arr(child(f?.props['childEntity'], 'ManagedObjectReference'))
    .map(toMoRef)
    .filter((r): r is MoRef => r?.type === 'Folder');
  return namesOf(session, 'Folder', refs);
}

/**
 * The folder a path names. With one datacenter the path is below its VM
 * folder (`prod/web`); with several its first name is the datacenter
 * (`dc1/prod/web`), since the same path may exist in each. Only morefs the
 * server returned go into requests: user text is compared, never sent.
 */
export async function resolveVmFolder(session: VSphereSession, path: string): Promise<{ folder: MoRef; datacenter: string }> {
  let parts = parseFolderPath(path);
  const dcs = await withContainerView(session, 'Datacenter', undefined, (view) =>
    retrieveProperties(session, { type: 'Datacenter', pathSet: ['name', 'vmFolder'], objects: [view], viaContainerView: true }),
  );
  const datacenters = dcs.map((d) => ({ name: text(d.props['name']) ?? '', vmFolder: toMoRef(d.props['vmFolder']) }));
  let dc: (typeof datacenters)[number] | undefined = datacenters[0];
  const found: string[] = [];
  if (datacenters.length !== 1) {
    dc = datacenters.find((d) => d.name === parts[0]);
    if (!dc) {
      throw new FolderNotFoundError(
        path,
        [],
        `datacenter ${parts[0]} (with ${datacenters.length} datacenters the path starts with one, as in <datacenter>/prod/web)`,
        datacenters.map((d) => d.name),
      );
    }
    found.push(dc.name);
    parts = parts.slice(1);
    if (parts.length === 0) throw new InvalidFolderPathError(path, 'it names a datacenter but no folder in it');
  }
  if (!dc?.vmFolder) throw new VSphereError(`folder ${path}: the vCenter has no datacenter with a VM folder`);
  let folder = dc.vmFolder;
  for (const name of parts) {
    const kids = await childFolders(session, folder);
    const match = kids.filter((k) => k.name === name);
    if (match.length === 0) throw new FolderNotFoundError(path, found, `folder ${name}`, kids.map((k) => k.name).sort());
    folder = match[0].ref;
    found.push(name);
  }
  return { folder, datacenter: dc.name };
}

/** Every VM in the folder and its sub-folders, with disks. */
export async function listVmsInFolder(session: VSphereSession, path: string, pageSize?: number): Promise<VmInfo[]> {
  const { folder } = await resolveVmFolder(session, path);
  return listVmsIn(session, folder, pageSize);
}
