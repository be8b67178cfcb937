import { resolve } from 'node:path';
import { runJson } from '@sendense/process';

export interface ChainInfo {
  /** Top first, then each backing file down to the base. */
  chain: string[];
  virtualSize: number;
  format: string;
}

interface QemuImgInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'full-backing-filename'?: string;
}

/**
 * The backing chain of a restore point. -U (force share) so that inspecting
 * never conflicts with a backup or exporter holding the images open.
 */
export async function readChain(imagePath: string): Promise<ChainInfo> {
  const infos = await runJson<QemuImgInfo[]>('qemu-img', ['info', '-U', '--backing-chain', '--output=json', imagePath], { timeoutMs: 30000 });
  if (!Array.isArray(infos) || infos.length === 0) throw new Error(`qemu-img info returned no image for ${imagePath}`);
  const top = infos[0] as QemuImgInfo;
  // qemu-img prints backing names as resolved relative to our cwd.
  return { chain: infos.map((i) => resolve(i.filename)), virtualSize: top['virtual-size'], format: top.format };
}
