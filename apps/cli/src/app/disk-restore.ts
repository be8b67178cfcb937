import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Ctx } from './context';
import { CliError, EXIT } from './errors';
import { byteProgress, counter } from './extract';
import { humanBytes } from './format';

export type ImageFormat = 'raw' | 'qcow2' | 'vmdk';

export interface ImageResult {
  output: string;
  format: ImageFormat;
  bytes: number;
  resumed_from: number;
}

/**
 * A restore point's whole disk as one image file, through `dest.sendense-part`
 * renamed when complete. Raw downloads resume with a Range request; qcow2 and
 * vmdk are converted on the storage node first (the answer starts after that).
 */
export async function downloadImage(ctx: Ctx, backupId: string, format: ImageFormat, dest: string, resume: boolean): Promise<ImageResult> {
  if (resume && format !== 'raw')
    throw new CliError(
      '--resume works with --format raw only (converted images have no stable byte ranges)',
      EXIT.usage,
      'drop --resume, or download with --format raw',
    );
  const part = `${dest}.sendense-part`;
  let have = 0;
  if (resume) {
    const st = await stat(part).catch(() => null);
    if (st?.isFile()) have = st.size;
  }
  const url = `/api/v1/backup/${encodeURIComponent(backupId)}/image`;
  if (format !== 'raw') ctx.note(`converting ${backupId} to ${format} on the storage node…`);
  let res = await ctx.raw.request('GET', url, { query: { format }, headers: have > 0 ? { range: `bytes=${have}-` } : {}, allow: [416] });
  if (res.status === 416) {
    // The part is complete already (or longer than the image): start over, it is cheap to be sure.
    await res.body?.cancel();
    have = 0;
    res = await ctx.raw.request('GET', url, { query: { format } });
  }
  const append = res.status === 206 && have > 0;
  if (!append) have = 0;
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (!res.body) throw new CliError(`the gateway sent no image for ${backupId}`, EXIT.internal, 'try again; if it repeats, see the gateway log');
  await mkdir(dirname(dest), { recursive: true });
  const bar = byteProgress(ctx, basename(dest), Number.isFinite(length) ? length + have : null);
  if (have) bar.add(have);
  let got = 0;
  try {
    await pipeline(
      Readable.fromWeb(res.body),
      counter((n) => {
        got += n;
        bar.add(n);
      }),
      createWriteStream(part, { flags: append ? 'a' : 'w', mode: 0o600 }),
    );
  } finally {
    bar.stop();
  }
  if (Number.isFinite(length) && got !== length) {
    throw new CliError(
      `image download of ${backupId} stopped after ${humanBytes(got)} of ${humanBytes(length)}`,
      EXIT.unreachable,
      format === 'raw' ? 'run the same command with --resume to continue' : 'run the same command again',
    );
  }
  const fh = await open(part, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(part, dest);
  return { output: dest, format, bytes: got, resumed_from: have };
}
