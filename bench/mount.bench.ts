/**
 * `npm run bench -- mount --json`: file-level restore performance.
 *
 * Cases (one JSON line each on stdout):
 * - mount-full: time to mount a full restore point (GPT, ext4), median of N.
 * - mount-chain-end: time to mount the end of a chain of 5 incrementals.
 * - download-1gib: throughput of a 1 GiB file (real, incompressible data)
 *   through the lib's read stream vs `cat` of the same file on the mount
 *   (both consumed by this Node process; each run on a fresh mount so neither
 *   side reads from the other's page cache of the guest filesystem).
 * Goals: mounts <= 2 s, throughput ratio >= 0.8. Logs go to stderr.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileBrowser, MountManager } from '@sendense/restore';
import { piped } from './support';
import { mkfs, partitionedRaw, takeRestorePoint, withRwMount } from '../libs/restore/test/fixtures';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function log(msg: string): void {
  process.stderr.write(`[mount bench] ${msg}\n`);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function writeRandomFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const chunk = 8 * MiB;
    for (let pos = 0; pos < size; pos += chunk) await fh.write(randomBytes(Math.min(chunk, size - pos)), 0, Math.min(chunk, size - pos), pos);
  } finally {
    await fh.close();
  }
}

export async function main(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const runsArg = args.find((a) => a.startsWith('--runs='));
  const runs = Math.max(3, Number(runsArg?.slice('--runs='.length) ?? 3));
  const emit = (obj: Record<string, unknown>) => {
    if (json) process.stdout.write(`${JSON.stringify({ bench: 'mount', ...obj })}\n`);
    else process.stderr.write(`${JSON.stringify(obj, null, 2)}\n`);
  };

  const work = await mkdtemp('/tmp/sendense-bench-mount-');
  const manager = new MountManager({ mountRoot: join(work, 'mnt'), runDir: join(work, 'run'), idleTimeoutMs: 0 });
  const browser = new FileBrowser(manager);
  try {
    log(`building fixtures in ${work}`);
    const raw = join(work, 'disk.raw');
    const [p1] = await partitionedRaw(raw, 1400, 'gpt', [{ type: 'L' }]);
    const part = p1!;
    await mkfs(raw, part, 'ext4');
    await withRwMount(raw, part, 'ext4', work, async (d) => {
      await writeRandomFile(join(d, 'big.bin'), GiB);
      await writeFile(join(d, 'version.txt'), 'full\n');
    });
    const images = [join(work, 'full.qcow2')];
    await takeRestorePoint(raw, images[0]!);
    for (let i = 1; i <= 5; i++) {
      await withRwMount(raw, part, 'ext4', work, async (d) => {
        await writeFile(join(d, 'version.txt'), `incr ${i}\n`);
        await writeFile(join(d, `added-${i}.bin`), randomBytes(4 * MiB));
      });
      images.push(join(work, `incr${i}.qcow2`));
      await takeRestorePoint(raw, images[i]!, images[i - 1]);
    }
    await rm(raw);

    const mountTimes = async (image: string): Promise<number[]> => {
      const times: number[] = [];
      for (let r = 0; r < runs; r++) {
        const t0 = process.hrtime.bigint();
        const info = await manager.mount({ imagePath: image });
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
        await manager.unmount(info.mountId);
      }
      return times;
    };
    for (const [name, image, chain] of [
      ['mount-full', images[0]!, 1],
      ['mount-chain-end', images[5]!, 6],
    ] as const) {
      const times = await mountTimes(image);
      const med = median(times);
      emit({ case: name, chain_length: chain, runs_ms: times.map((t) => Math.round(t)), median_ms: Math.round(med), goal_ms: 2000, ok: med <= 2000 });
    }

    const libRates: number[] = [];
    const catRates: number[] = [];
    for (let r = 0; r < runs; r++) {
      for (const kind of ['lib', 'cat'] as const) {
        const info = await manager.mount({ imagePath: images[5]! });
        try {
          const t0 = process.hrtime.bigint();
          let bytes = 0;
          if (kind === 'lib') {
            const { stream } = await browser.openRead(info.mountId, 'p1/big.bin');
            for await (const c of stream) bytes += (c as Buffer).length;
          } else {
            const path = join(info.partitions[0]!.hostPath!, 'big.bin');
            // Through a pipe drained by wc -c (the process runner keeps what it reads).
            bytes = await piped(['cat', path]);
          }
          const secs = Number(process.hrtime.bigint() - t0) / 1e9;
          if (bytes !== GiB) throw new Error(`read ${bytes} bytes, expected ${GiB}`);
          (kind === 'lib' ? libRates : catRates).push(bytes / MiB / secs);
        } finally {
          await manager.unmount(info.mountId);
        }
      }
    }
    const lib = median(libRates);
    const cat = median(catRates);
    emit({
      case: 'download-1gib',
      lib_mib_s: Math.round(lib),
      cat_mib_s: Math.round(cat),
      lib_runs_mib_s: libRates.map(Math.round),
      cat_runs_mib_s: catRates.map(Math.round),
      ratio: Number((lib / cat).toFixed(3)),
      goal_ratio: 0.8,
      ok: lib / cat >= 0.8,
    });
  } finally {
    await manager.close().catch((e: Error) => log(`close: ${e.message}`));
    await rm(work, { recursive: true, force: true });
  }
}
