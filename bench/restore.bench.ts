/**
 * `npm run bench -- restore --json [--file-mib 512] [--tree-files 64] [--tree-file-mib 4] [--runs 3]`
 *
 * File-level restore through the product as a user gets it: a full backup of
 * a disk with an ext4 filesystem, mounted through the gateway's API, then
 * - download: one big file through GET /api/v1/restore/{mount}/download
 *   (gateway → restore-service → mount), MiB/s, against `cat` of the same
 *   file from the same kind of mount (the restore-service's own mount path);
 * - archive: a directory through GET .../archive (tar stream) against
 *   `tar -cf -` of the same directory on the mount.
 * The API side is read by this process (fetch) and, for the file, by curl
 * into a pipe as a command-line user would; the references are drained
 * from a pipe by wc -c. Every run is on a
 * fresh mount (a new loop device, so neither side reads the other's page
 * cache of the guest filesystem), alternating which goes first. Median of runs.
 */
import { join } from 'node:path';
import type { System } from '../tests/support/system';
import { MiB, emit, piped, logger, median, numFlag, round, startBenchSystem, timedBackup, type BackupRow } from './support';

const log = logger('restore');
const VM = 'bench-restore';

interface Mount {
  mount_id: string;
  mount_path: string;
  partitions: { index: number; mounted: boolean; hostPath?: string }[];
}

async function drain(sys: System, path: string): Promise<number> {
  const res = await fetch(`${sys.api}${path}`, { headers: { authorization: `Bearer ${sys.adminKey}` } });
  if (res.status !== 200 || !res.body) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  let n = 0;
  for await (const chunk of res.body) n += (chunk as Uint8Array).byteLength;
  return n;
}

export async function main(args: string[]): Promise<void> {
  const fileMiB = numFlag(args, 'file-mib', 512);
  const treeFiles = numFlag(args, 'tree-files', 64);
  const treeFileMiB = numFlag(args, 'tree-file-mib', 4);
  const runs = numFlag(args, 'runs', 3);
  const treeMiB = treeFiles * treeFileMiB;
  const diskMiB = Math.ceil(((fileMiB + treeMiB) * 1.25 + 128) / 64) * 64;
  const randomFiles: Record<string, number> = { '/data/big.bin': fileMiB * MiB };
  for (let i = 0; i < treeFiles; i++) randomFiles[`/tree/d${i % 8}/f${i}.bin`] = treeFileMiB * MiB;
  log(`${diskMiB} MiB ext4 disk: a ${fileMiB} MiB file and ${treeFiles} files of ${treeFileMiB} MiB; ${runs} runs`);
  const b = await startBenchSystem('restore', [
    { name: VM, disks: [{ sizeMiB: diskMiB, content: { type: 'filesystem', filesystem: 'ext4', partitionTable: 'gpt', randomFiles, seed: 5 } }] },
  ]);
  const { sys } = b;
  try {
    const full = await timedBackup(sys, VM, 'full');
    const backupId = (full.doc.backups[0] as BackupRow).id;
    const withMount = async <T>(fn: (m: Mount, host: string) => Promise<T>): Promise<T> => {
      const m = await sys.call<Mount>('POST', '/api/v1/restore/mount', { backup_id: backupId });
      if (m.status !== 201) throw new Error(`mount: ${m.status} ${JSON.stringify(m.body)}`);
      try {
        const p = m.body.partitions.find((x) => x.mounted && x.hostPath);
        if (!p?.hostPath) throw new Error(`mount ${m.body.mount_id} has no mounted partition: ${JSON.stringify(m.body.partitions)}`);
        return await fn(m.body, p.hostPath);
      } finally {
        await sys.call('DELETE', `/api/v1/restore/${m.body.mount_id}`);
      }
    };
    const partOf = (m: Mount) => `p${m.partitions.find((x) => x.mounted)!.index}`;
    const timed = async (fn: () => Promise<number>) => {
      const t0 = process.hrtime.bigint();
      const bytes = await fn();
      return { bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
    };
    const rates: Record<string, number[]> = { api: [], curl: [], cat: [], archive: [], tar: [] };
    const tarBytes: number[] = [];
    for (let r = 0; r < runs; r++) {
      const order = r % 2 === 0 ? ['product', 'curl', 'reference'] : ['reference', 'curl', 'product'];
      for (const who of order) {
        await withMount(async (m, host) => {
          if (who === 'curl') {
            // The same download as a command-line user makes it (curl into a pipe, like the reference).
            const url = `${sys.api}/api/v1/restore/${m.mount_id}/download?path=${encodeURIComponent(`${partOf(m)}/data/big.bin`)}`;
            const cu = await timed(() => piped(['curl', '-sf', '-H', `authorization: Bearer ${sys.adminKey}`, url]));
            if (cu.bytes !== fileMiB * MiB) throw new Error(`curl download gave ${cu.bytes} bytes`);
            rates['curl']!.push(cu.bytes / MiB / cu.seconds);
            log(`run ${r + 1} curl: download ${(cu.bytes / MiB / cu.seconds).toFixed(0)} MiB/s`);
          } else if (who === 'product') {
            const dl = await timed(() => drain(sys, `/api/v1/restore/${m.mount_id}/download?path=${encodeURIComponent(`${partOf(m)}/data/big.bin`)}`));
            if (dl.bytes !== fileMiB * MiB) throw new Error(`download gave ${dl.bytes} bytes, the file has ${fileMiB * MiB}`);
            const ar = await timed(() => drain(sys, `/api/v1/restore/${m.mount_id}/archive?path=${encodeURIComponent(`${partOf(m)}/tree`)}`));
            if (ar.bytes < treeMiB * MiB) throw new Error(`archive gave ${ar.bytes} bytes, the files hold ${treeMiB * MiB}`);
            rates['api']!.push(dl.bytes / MiB / dl.seconds);
            rates['archive']!.push(treeMiB / ar.seconds);
            tarBytes.push(ar.bytes);
            log(`run ${r + 1} api: download ${(dl.bytes / MiB / dl.seconds).toFixed(0)} MiB/s, archive ${(treeMiB / ar.seconds).toFixed(0)} MiB/s`);
          } else {
            const c = await timed(() => piped(['cat', join(host, 'data/big.bin')]));
            if (c.bytes !== fileMiB * MiB) throw new Error(`cat gave ${c.bytes} bytes`);
            const t = await timed(() => piped(['tar', '-cf', '-', '-C', host, 'tree']));
            rates['cat']!.push(fileMiB / c.seconds);
            rates['tar']!.push(treeMiB / t.seconds);
            log(`run ${r + 1} local: cat ${(fileMiB / c.seconds).toFixed(0)} MiB/s, tar ${(treeMiB / t.seconds).toFixed(0)} MiB/s`);
          }
        });
      }
    }
    const med = (k: string) => median(rates[k] ?? []);
    emit('restore', {
      case: 'download-file',
      file_MiB: fileMiB,
      api_MiBps: round(med('api')),
      api_curl_MiBps: round(med('curl')),
      cat_MiBps: round(med('cat')),
      ratio: round(med('api') / med('cat'), 3),
      curl_ratio: round(med('curl') / med('cat'), 3),
      api_runs_MiBps: (rates['api'] ?? []).map((x) => round(x)),
      cat_runs_MiBps: (rates['cat'] ?? []).map((x) => round(x)),
      runs,
      measures:
        'GET /api/v1/restore/{mount}/download through the gateway (read by this process with fetch; and by curl into a pipe) vs cat of the file on the mount into a pipe, fresh mount each',
    });
    emit('restore', {
      case: 'archive-directory',
      files: treeFiles,
      data_MiB: treeMiB,
      archive_bytes: median(tarBytes),
      api_MiBps: round(med('archive')),
      tar_MiBps: round(med('tar')),
      ratio: round(med('archive') / med('tar'), 3),
      runs,
      measures: 'GET /api/v1/restore/{mount}/archive (tar stream) vs tar -cf - of the directory on the mount; MiB/s of file data',
    });
  } finally {
    await b.stop();
  }
}
