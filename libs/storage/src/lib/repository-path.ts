import { lstat, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';

/** A repository path that may not be used; the message says why (it names the path: it is the admin's own input). */
export class RepositoryPathRefused extends Error {
  override name = 'RepositoryPathRefused';
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

function isUnder(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/**
 * The real location of `path` without creating anything: the nearest
 * existing ancestor with its symlinks resolved, plus the components below it
 * that do not exist yet (so they cannot be symlinks).
 */
export async function realLocation(path: string): Promise<string> {
  let existing = path;
  const missing: string[] = [];
  for (;;) {
    try {
      await lstat(existing);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const parent = dirname(existing);
      if (parent === existing) break;
      missing.unshift(existing.slice(parent === '/' ? 1 : parent.length + 1));
      existing = parent;
    }
  }
  const real = await realpath(existing);
  return missing.length ? join(real, ...missing) : real;
}

/**
 * Checks the directory of a new local repository and returns its real path
 * (symlinks resolved), creating nothing. Refused: a relative, unnormalized
 * or control-character path; a path that is not strictly under one of
 * `allowedRoots` once resolved; a path equal to, inside, or containing an
 * existing repository's directory. The caller creates the directory only
 * after this passes (and should compare `realLocation` again afterwards).
 */
export async function checkRepositoryPath(
  path: unknown,
  allowedRoots: readonly string[],
  existing: readonly { name: string; path: string }[] = [],
): Promise<string> {
  if (typeof path !== 'string' || path === '') throw new RepositoryPathRefused('a local repository needs a "path"');
  if (path.length > 1024) throw new RepositoryPathRefused('the repository path is longer than 1024 characters');
  if (CONTROL.test(path)) throw new RepositoryPathRefused('the repository path contains control characters');
  if (!isAbsolute(path)) throw new RepositoryPathRefused(`repository path ${JSON.stringify(path)} is not absolute`);
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
  if (normalize(trimmed) !== trimmed || trimmed.split('/').includes('..')) {
    throw new RepositoryPathRefused(`repository path ${JSON.stringify(path)} is not normalized (no ".", ".." or "//")`);
  }
  const roots = (await Promise.all(allowedRoots.filter(Boolean).map((r) => realLocation(r).catch(() => r)))).filter((r) => r !== '/');
  if (roots.length === 0) throw new RepositoryPathRefused('no allowed repository roots are configured (REPOSITORY_ALLOWED_ROOTS)');
  let real: string;
  try {
    real = await realLocation(trimmed);
  } catch (err) {
    throw new RepositoryPathRefused(`repository path ${JSON.stringify(path)} cannot be resolved (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (!roots.some((root) => isUnder(root, real))) {
    throw new RepositoryPathRefused(
      `repository path ${JSON.stringify(path)}${real !== trimmed ? ` (really ${real})` : ''} is not inside an allowed root (${allowedRoots.join(', ')}); ` +
        'choose a directory below one, or add its parent to REPOSITORY_ALLOWED_ROOTS, NBD_ALLOWED_ROOTS and RESTORE_ALLOWED_ROOTS',
    );
  }
  for (const other of existing) {
    const theirs = await realLocation(other.path).catch(() => other.path);
    if (theirs === real || isUnder(theirs, real) || isUnder(real, theirs)) {
      throw new RepositoryPathRefused(
        `repository path ${JSON.stringify(path)} ${theirs === real ? 'is the directory of' : isUnder(theirs, real) ? 'lies inside' : 'contains'} repository ${other.name}; ` +
          'each repository needs its own directory, not nested in another',
      );
    }
  }
  return real;
}
