import { realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EntryNotFound, PathRejected } from './errors';

/**
 * Resolution of user-supplied paths inside a mount root.
 *
 * The guest filesystem is hostile input: it may hold symlinks to /etc or to
 * "../../..", and the user path itself may try `..`. The rule is simple and
 * checked on the kernel's answer, not on string tricks: the realpath of what
 * we are about to touch must be the mount root or lie below it. An absolute
 * symlink inside a guest (/etc/passwd) resolves against the host root and is
 * therefore refused rather than reinterpreted.
 */

export const MAX_PATH_LENGTH = 4096;

export interface ResolvedPath {
  /** Normalized mount-relative path ('' for the root), without leading '/'. */
  relative: string;
  /** The host path to operate on (symlinks resolved, checked to be inside). */
  real: string;
}

/**
 * Split a user path into safe segments. Paths are relative to the mount root;
 * '' and '/' are the root. An absolute path is accepted only when it is a host
 * path inside the mount root (so a caller holding a mount path can pass it).
 */
export function normalizeUserPath(root: string, input: string): string[] {
  if (typeof input !== 'string') throw new PathRejected('path must be a string');
  if (input.includes('\0')) throw new PathRejected('NUL byte in path');
  if (input.length > MAX_PATH_LENGTH) throw new PathRejected('path too long');
  let rest = input;
  if (rest.startsWith('/') && rest !== '/') {
    const prefix = root.endsWith('/') ? root : `${root}/`;
    if (rest === root) rest = '';
    else if (rest.startsWith(prefix)) rest = rest.slice(prefix.length);
    else throw new PathRejected('absolute path outside the mount');
  }
  const segments: string[] = [];
  for (const seg of rest.split('/')) {
    if (seg === '' || seg === '.') continue;
    // Refuse instead of normalizing: a '..' is never needed by a browser client
    // and silently clamping it would hide an attack from the logs.
    if (seg === '..') throw new PathRejected("'..' segment in path");
    segments.push(seg);
  }
  return segments;
}

function isInside(rootReal: string, candidate: string): boolean {
  return candidate === rootReal || candidate.startsWith(rootReal.endsWith('/') ? rootReal : `${rootReal}/`);
}

async function realpathOrThrow(path: string, shown: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new EntryNotFound(shown);
    if (code === 'ELOOP') throw new PathRejected('too many levels of symbolic links');
    throw err;
  }
}

/**
 * Resolve `input` inside `root`. With followFinal=false the last component is
 * not dereferenced (to lstat/readlink a symlink itself), but every
 * intermediate directory still is, and is checked.
 */
export async function resolveInside(root: string, input: string, { followFinal = true }: { followFinal?: boolean } = {}): Promise<ResolvedPath> {
  const segments = normalizeUserPath(root, input);
  const relative = segments.join('/');
  const shown = `/${relative}`;
  const rootReal = await realpathOrThrow(root, '/');
  const lexical = join(rootReal, ...segments);
  if (!followFinal && segments.length > 0) {
    const parentReal = await realpathOrThrow(dirname(lexical), shown);
    if (!isInside(rootReal, parentReal)) throw new PathRejected('path leaves the mount through a symlink');
    return { relative, real: join(parentReal, basename(lexical)) };
  }
  const real = await realpathOrThrow(lexical, shown);
  if (!isInside(rootReal, real)) throw new PathRejected('path leaves the mount through a symlink');
  return { relative, real };
}
