import { stat } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import type { NbdExportKind } from '@sendense/contracts';
import { CommandError, run, runJson } from '@sendense/process';
import { invalid } from '../exporter-error';

interface QemuImgInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
}

function under(roots: readonly string[], path: string): boolean {
  return roots.some((root) => {
    const rel = relative(root, path);
    return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
  });
}

/**
 * The size a client sees. For QCOW2 this also proves the file is QCOW2 and
 * that every file of its backing chain is under an allowed root (qemu-nbd
 * opens the whole chain, so a crafted backing path would escape the roots).
 * `-U` (force share) reads metadata even while a writer holds the lock.
 */
export async function inspectImage(path: string, kind: NbdExportKind, allowedRoots: readonly string[]): Promise<number> {
  if (kind === 'raw') return (await stat(path)).size;
  if (kind === 'block') {
    const res = await run('blockdev', ['--getsize64', path], { timeoutMs: 10_000 });
    return Number(res.stdout.trim());
  }
  let chain: QemuImgInfo[];
  try {
    chain = await runJson<QemuImgInfo[]>('qemu-img', ['info', '--output=json', '--backing-chain', '-U', '-f', 'qcow2', path], {
      timeoutMs: 30_000,
    });
  } catch (err) {
    const why = err instanceof CommandError ? err.stderr.trim() || err.message : String(err);
    throw invalid(`filePath ${JSON.stringify(path)} is not a readable QCOW2 image: ${why}`);
  }
  for (const layer of chain.slice(1)) {
    if (!isAbsolute(layer.filename) || !under(allowedRoots, layer.filename)) {
      throw invalid(`QCOW2 image ${path} has backing file ${JSON.stringify(layer.filename)} outside the allowed roots`);
    }
  }
  return chain[0]['virtual-size'];
}
