import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, normalize, relative, sep } from 'node:path';
import type { NbdExportKind } from '@sendense/contracts';
import { invalid } from '../exporter-error';

/**
 * Characters refused in exported paths. A path is written into an nbd-server
 * config file (where `[`, `=`, `#`, `%s` and newlines mean something) and
 * passed to qemu-nbd (where `,` separates options); quotes and shell
 * characters are refused too so a path can never be misread by any tool.
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be refused
const FORBIDDEN = /[\u0000-\u001f\u007f\s[\]=#%,"'`$\\;&|<>*?{}()!~]/;

function isUnder(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

function checkText(label: string, path: string): void {
  const bad = FORBIDDEN.exec(path);
  if (bad) throw invalid(`${label} ${JSON.stringify(path)} contains ${JSON.stringify(bad[0])}, which is not allowed in an exported path`);
}

/**
 * Check a path a caller asks to export and return its resolved form.
 * The path must be absolute, already normalized, free of special characters,
 * resolve (symlinks followed) under an allowed root, and be a regular file
 * (qcow2, raw) or a block device (block).
 */
export async function validateExportPath(path: unknown, kind: NbdExportKind, allowedRoots: readonly string[]): Promise<string> {
  if (typeof path !== 'string' || path === '') throw invalid('filePath is missing');
  if (path.length > 4096) throw invalid('filePath is longer than 4096 characters');
  checkText('filePath', path);
  if (!isAbsolute(path)) throw invalid(`filePath ${JSON.stringify(path)} is not absolute`);
  if (normalize(path) !== path || path.endsWith('/')) {
    throw invalid(`filePath ${JSON.stringify(path)} is not normalized (write it as ${JSON.stringify(normalize(path).replace(/\/+$/, ''))})`);
  }

  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw invalid(`filePath ${JSON.stringify(path)} ${code === 'ENOENT' ? 'does not exist' : `cannot be resolved (${code})`}`);
  }
  // A symlink could point at something with odd characters: check the target too.
  checkText('filePath target', real);

  const roots = await Promise.all(allowedRoots.map((r) => realpath(r).catch(() => r)));
  if (!roots.some((root) => isUnder(root, real))) {
    throw invalid(`filePath ${JSON.stringify(path)}${real !== path ? ` (resolves to ${real})` : ''} is not under an allowed root (${allowedRoots.join(', ')})`);
  }

  const st = await stat(real);
  if (kind === 'block') {
    if (!st.isBlockDevice()) throw invalid(`filePath ${JSON.stringify(path)} is not a block device, but kind is "block"`);
  } else if (!st.isFile()) {
    throw invalid(`filePath ${JSON.stringify(path)} is not a regular file, but kind is "${kind}"`);
  }
  return real;
}
