import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * sha256 of byte ranges of one file, spread over worker threads.
 *
 * Why threads: the layer digest of a 2 GiB full is ~2 s of sha256 on one
 * core (1.5 GB/s with SHA-NI) and sat between "copy done" and "backup
 * committed". Measured here (2 cores, 2 GiB in page cache): one thread
 * 1.96 s, two worker threads 0.85 s. WebCrypto's async digest was tried
 * first: it copies every input into fresh memory and was no faster.
 *
 * The worker is plain JavaScript evaluated from a string, so it needs no
 * file of its own next to a bundled service. Each worker reuses one read
 * buffer; nothing here allocates per byte hashed.
 */

/** One hash: the bytes at these [file offset, length] pieces, in order. */
export type HashUnit = ReadonlyArray<readonly [number, number]>;

export class ShortRead extends Error {
  constructor(readonly offset: number) {
    super(`short read at file offset ${offset}: the file ends before the data it maps`);
  }
}

const READ_BUFFER = 1024 * 1024;
/** Work sent to a worker at once (many small units ride in one message). */
const BATCH_BYTES = 64 * 1024 * 1024;
/** Below this many bytes in all, thread start-up costs more than it saves. */
const INLINE_MAX_BYTES = 32 * 1024 * 1024;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const buf = Buffer.allocUnsafeSlow(${READ_BUFFER});
parentPort.on('message', ({ id, file, units }) => {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
    const hexes = units.map((pieces) => {
      const h = createHash('sha256');
      for (const [off, len] of pieces) {
        for (let done = 0; done < len; ) {
          const n = Math.min(buf.length, len - done);
          const got = fs.readSync(fd, buf, 0, n, off + done);
          if (got !== n) { const e = new Error('short read'); e.shortReadAt = off + done + got; throw e; }
          h.update(buf.subarray(0, n));
          done += n;
        }
      }
      return h.digest('hex');
    });
    parentPort.postMessage({ id, hexes });
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err), shortReadAt: err && err.shortReadAt });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
});
`;

interface Batch {
  first: number;
  units: HashUnit[];
}

const unitBytes = (u: HashUnit) => u.reduce((s, [, len]) => s + len, 0);

function batches(units: readonly HashUnit[], batchBytes: number): Batch[] {
  const out: Batch[] = [];
  let cur: Batch | undefined;
  let bytes = 0;
  units.forEach((u, i) => {
    if (!cur || bytes >= batchBytes) {
      cur = { first: i, units: [] };
      out.push(cur);
      bytes = 0;
    }
    cur.units.push(u);
    bytes += unitBytes(u);
  });
  return out;
}

async function hashInline(file: string, units: readonly HashUnit[]): Promise<string[]> {
  const fh = await fsp.open(file, 'r');
  const buf = Buffer.allocUnsafe(READ_BUFFER);
  try {
    const out: string[] = [];
    for (const pieces of units) {
      const h = createHash('sha256');
      for (const [off, len] of pieces) {
        for (let done = 0; done < len; ) {
          const n = Math.min(buf.length, len - done);
          const { bytesRead } = await fh.read(buf, 0, n, off + done);
          if (bytesRead !== n) throw new ShortRead(off + done + bytesRead);
          h.update(buf.subarray(0, n));
          done += n;
        }
      }
      out.push(h.digest('hex'));
    }
    return out;
  } finally {
    await fh.close();
  }
}

interface Reply {
  id: number;
  hexes?: string[];
  error?: string;
  shortReadAt?: number;
}

async function hashOnThreads(file: string, work: Batch[], threads: number, out: string[]): Promise<void> {
  const workers = Array.from({ length: threads }, () => new Worker(WORKER_SOURCE, { eval: true }));
  let next = 0;
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const send = () => {
              const id = next++;
              if (id >= work.length) return resolve();
              w.postMessage({ id, file, units: work[id].units });
            };
            w.on('message', (m: Reply) => {
              if (m.error !== undefined) {
                reject(m.shortReadAt !== undefined ? new ShortRead(m.shortReadAt) : new Error(`hashing ${file}: ${m.error}`));
                return;
              }
              const b = work[m.id];
              (m.hexes ?? []).forEach((hex, k) => (out[b.first + k] = hex));
              send();
            });
            w.once('error', (err) => reject(new Error(`hashing ${file}: worker thread failed: ${err.message}`, { cause: err })));
            w.once('exit', (code) => reject(new Error(`hashing ${file}: worker thread exited with code ${code}`)));
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * sha256 (hex) of each unit, in the order given. `threads` defaults to the
 * cores available (at most 4); 1, or little data, hashes on this thread.
 */
export async function hashFileRanges(file: string, units: readonly HashUnit[], opts: { threads?: number } = {}): Promise<string[]> {
  const total = units.reduce((s, u) => s + unitBytes(u), 0);
  const wanted = opts.threads ?? Math.min(availableParallelism(), 4);
  // Batches small enough that every thread gets some, big enough to keep messages few.
  const work = batches(units, Math.max(1, Math.min(BATCH_BYTES, Math.ceil(total / wanted))));
  const threads = Math.min(wanted, work.length);
  if (threads <= 1 || (opts.threads === undefined && total < INLINE_MAX_BYTES)) return hashInline(file, units);
  const out = new Array<string>(units.length);
  await hashOnThreads(file, work, threads, out);
  return out;
}
