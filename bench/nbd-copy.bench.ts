/**
 * nbd-copy: the project's extent copier against nbdcopy (libnbd), same
 * source and target servers, same run.
 *
 *   npm run bench -- nbd-copy --json [--runs 3] [--size-gib 2] [--cases dense,half-sparse,extents]
 *                                    [--request-size 262144] [--queue-depth 16] [--connections 4]
 *                                    [--qcow2-opts cluster_size=65536] [--target-cache writeback] [--target-aio threads]
 *                                    [--target-tls none|psk]
 *
 * Source: a raw image served read-only by qemu-nbd (-e N: multi-conn).
 * Target: a fresh QCOW2 per run served writable by qemu-nbd (-e N); with
 * --target-tls psk, over TLS-PSK as the nbd-exporter serves backup targets
 * (NBD_TARGET_TLS=psk: tls-creds-psk with a fresh key per target; our client
 * gets the key as tlsPsk, nbdcopy as nbds+unix://...&tls-psk-file=).
 * Both copiers flush the target (nbdcopy --flush) and are told the target
 * starts zeroed (nbdcopy --destination-is-zero; our extent list leaves out
 * unallocated holes), so both move the same bytes.
 * Each case starts with one unmeasured warm-up run of each copier; measured
 * runs alternate which copier goes first.
 * Cases:
 *   dense        2 GiB of random data, extents from base:allocation
 *   half-sparse  1 MiB data / 1 MiB hole alternating, extents from base:allocation
 *   extents      a CBT-like list of 4 KiB-1 MiB extents (log-uniform) covering 5%;
 *                nbdcopy has no extent list, so it copies the same sparse source
 *                (data exactly in those extents, holes elsewhere) skipping holes.
 * stdout: one JSON line per case (with --json); progress on stderr.
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, ftruncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, run, waitFor } from '@sendense/process';
import { DEFAULT_CONNECTIONS, DEFAULT_QUEUE_DEPTH, DEFAULT_REQUEST_SIZE, Extent, NbdClient, allocatedExtents, copyExtents, totalBytes } from '@sendense/nbd';
import { existsSync } from 'node:fs';
import { piped } from './support';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Args {
  json: boolean;
  runs: number;
  sizeGiB: number;
  cases: string[];
  requestSize: number;
  queueDepth: number;
  connections: number;
  shared: number;
  dir: string;
  checkpointBytes?: number;
  /** `qemu-img create -o` options of the target (cluster_size, extended_l2, preallocation). */
  qcow2Opts?: string;
  targetCache: string;
  targetAio: string;
  targetTls: 'none' | 'psk';
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    json: false,
    runs: 3,
    sizeGiB: 2,
    cases: ['dense', 'half-sparse', 'extents'],
    requestSize: DEFAULT_REQUEST_SIZE,
    queueDepth: DEFAULT_QUEUE_DEPTH,
    connections: DEFAULT_CONNECTIONS,
    shared: 8,
    dir: '/var/tmp',
    targetCache: 'writeback',
    targetAio: 'threads',
    targetTls: 'none',
  };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    switch (argv[i]) {
      case '--json':
        a.json = true;
        break;
      case '--runs':
        a.runs = Number(v());
        break;
      case '--size-gib':
        a.sizeGiB = Number(v());
        break;
      case '--cases':
        a.cases = v().split(',');
        break;
      case '--request-size':
        a.requestSize = Number(v());
        break;
      case '--queue-depth':
        a.queueDepth = Number(v());
        break;
      case '--connections':
        a.connections = Number(v());
        break;
      case '--dir':
        a.dir = v();
        break;
      case '--checkpoint-bytes':
        a.checkpointBytes = Number(v());
        break;
      case '--shared':
        a.shared = Number(v());
        break;
      case '--qcow2-opts':
        a.qcow2Opts = v();
        break;
      case '--target-cache':
        a.targetCache = v();
        break;
      case '--target-aio':
        a.targetAio = v();
        break;
      case '--target-tls': {
        const t = v();
        if (t !== 'none' && t !== 'psk') throw new Error(`--target-tls ${t}: none or psk`);
        a.targetTls = t;
        break;
      }
      default:
        throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return a;
}

const log = (msg: string) => process.stderr.write(`[nbd-copy] ${msg}\n`);

/** Write random data at the given extents of a sparse raw file. */
function makeRaw(path: string, size: number, extents: readonly Extent[]): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    const buf = Buffer.allocUnsafe(8 * MiB);
    for (const e of extents) {
      for (let at = e.offset; at < e.offset + e.length; at += buf.length) {
        const n = Math.min(buf.length, e.offset + e.length - at);
        randomFillSync(buf, 0, n);
        writeSync(fd, buf, 0, n, at);
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** CBT-like list: extents of 4 KiB-1 MiB (log-uniform, 4 KiB aligned) covering `fraction` of size. */
function cbtExtents(size: number, fraction: number, seed = 42): Extent[] {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const want = size * fraction;
  const out: Extent[] = [];
  let total = 0;
  const used = new Set<number>(); // 1 MiB slots: keeps extents apart and sorted later
  while (total < want) {
    const len = Math.max(4096, Math.round(Math.exp(Math.log(4096) + rnd() * (Math.log(MiB) - Math.log(4096))) / 4096) * 4096);
    const slot = Math.floor(rnd() * (size / (2 * MiB)));
    if (used.has(slot)) continue;
    used.add(slot);
    const offset = slot * 2 * MiB + Math.floor((rnd() * (MiB - len + 4096)) / 4096) * 4096;
    out.push({ offset, length: len });
    total += len;
  }
  return out.sort((a, b) => a.offset - b.offset);
}

async function startQemuNbd(args: string[], sock: string): Promise<Daemon> {
  rmSync(sock, { force: true });
  const d = await Daemon.start('qemu-nbd', [...args, '--persistent', '-k', sock]);
  await waitFor(
    () => {
      if (!d.running) throw d.exitError('qemu-nbd did not start');
      return existsSync(sock);
    },
    { timeoutMs: 10000, message: sock },
  );
  return d;
}

const uriOf = (sock: string) => `nbd+unix:///?socket=${sock}`;

interface Target {
  /** What our client opens. */
  uri: string;
  tlsPsk?: { identity: string; key: string };
  /** What nbdcopy opens (libnbd takes the key file in the URI). */
  nbdcopyUri: string;
  stop(): Promise<void>;
}

async function freshTarget(dir: string, size: number, args: Args): Promise<Target> {
  const img = join(dir, 'target.qcow2');
  rmSync(img, { force: true });
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', ...(args.qcow2Opts ? ['-o', args.qcow2Opts] : []), img, String(size)]);
  const sock = join(dir, 'target.sock');
  const tls: string[] = [];
  let psk: { identity: string; key: string } | undefined;
  const pskDir = join(dir, 'psk');
  if (args.targetTls === 'psk') {
    // As the nbd-exporter does it: a fresh key per target in a 0700 dir, qemu's "identity:hexkey".
    psk = { identity: 'sendense', key: randomBytes(32).toString('hex') };
    rmSync(pskDir, { recursive: true, force: true });
    mkdirSync(pskDir, { mode: 0o700 });
    writeFileSync(join(pskDir, 'keys.psk'), `${psk.identity}:${psk.key}\n`, { mode: 0o600 });
    tls.push('--object', `tls-creds-psk,id=tls0,endpoint=server,dir=${pskDir}`, '--tls-creds', 'tls0');
  }
  const d = await startQemuNbd(['-f', 'qcow2', '-e', String(args.shared), `--cache=${args.targetCache}`, `--aio=${args.targetAio}`, ...tls, img], sock);
  return {
    uri: psk ? `nbds+unix:///?socket=${sock}` : uriOf(sock),
    ...(psk ? { tlsPsk: psk } : {}),
    nbdcopyUri: psk ? `nbds+unix://${psk.identity}@/?socket=${sock}&tls-psk-file=${join(pskDir, 'keys.psk')}` : uriOf(sock),
    stop: async () => {
      await d.stop();
      rmSync(img, { force: true });
      rmSync(pskDir, { recursive: true, force: true });
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function runProject(
  srcUri: string,
  tgt: Target,
  args: Args,
  extents: Extent[] | 'allocated',
): Promise<{ seconds: number; rssMiB: number; bytes: number; tls: string | null }> {
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  const t0 = process.hrtime.bigint();
  const [source, target] = await Promise.all([
    NbdClient.connect({ uri: srcUri, connections: args.connections }),
    NbdClient.connect({ uri: tgt.uri, connections: args.connections, ...(tgt.tlsPsk ? { tlsPsk: tgt.tlsPsk } : {}) }),
  ]);
  try {
    const list = extents === 'allocated' ? await allocatedExtents(source) : extents;
    const r = await copyExtents({
      source,
      target,
      extents: list,
      requestSize: args.requestSize,
      queueDepth: args.queueDepth,
      checkpointBytes: args.checkpointBytes,
      onProgress: (p) => {
        if (!p.done) process.stderr.write(`\r  project ${(p.rate / MiB).toFixed(0)} MiB/s ${p.extentsDone}/${p.extentsTotal}   `);
      },
      progressIntervalMs: 500,
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stderr.write('\r');
    return { seconds, rssMiB: peak / MiB, bytes: r.bytesWritten + r.bytesZeroed, tls: target.tls ? `${target.tls.protocol} ${target.tls.cipher}` : null };
  } finally {
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage.rss());
    await source.close();
    await target.close();
  }
}

async function runNbdcopy(srcUri: string, tgt: Target): Promise<number> {
  const t0 = process.hrtime.bigint();
  await run('nbdcopy', ['--destination-is-zero', '--flush', srcUri, tgt.nbdcopyUri], { timeoutMs: 600000 });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function benchCase(name: string, dir: string, args: Args): Promise<Record<string, unknown>> {
  const size = args.sizeGiB * GiB;
  const raw = join(dir, `${name}.raw`);
  let data: Extent[];
  let list: Extent[] | 'allocated' = 'allocated';
  if (name === 'dense') data = [{ offset: 0, length: size }];
  else if (name === 'half-sparse') {
    data = [];
    for (let at = 0; at < size; at += 2 * MiB) data.push({ offset: at, length: MiB });
  } else if (name === 'extents') {
    data = cbtExtents(size, 0.05);
    list = data;
  } else throw new Error(`unknown case ${name}`);
  log(`${name}: writing ${(totalBytes(data) / MiB).toFixed(0)} MiB of data into a ${args.sizeGiB} GiB raw image`);
  makeRaw(raw, size, data);
  const srcSock = join(dir, 'source.sock');
  const src = await startQemuNbd(['-r', '-f', 'raw', '-e', String(args.shared), '--cache=writeback', raw], srcSock);
  const ours: number[] = [];
  const theirs: number[] = [];
  let rss = 0;
  let bytes = 0;
  let tlsSession: string | null = null;
  try {
    // Warm the page cache, then one unmeasured run of each copier: the
    // first copy into a fresh tmpfs/page cache is slower for whoever goes first.
    await piped(['cat', raw]);
    for (const who of ['project', 'nbdcopy']) {
      const tgt = await freshTarget(dir, size, args);
      try {
        if (who === 'project') await runProject(uriOf(srcSock), tgt, args, list);
        else await runNbdcopy(uriOf(srcSock), tgt);
        log(`${name} warm-up: ${who} done`);
      } finally {
        await tgt.stop();
      }
    }
    for (let i = 0; i < args.runs; i++) {
      // Alternate who goes first so that drift on the host hits both alike.
      const order = i % 2 === 0 ? ['project', 'nbdcopy'] : ['nbdcopy', 'project'];
      for (const who of order) {
        // Write back and discard what the last run removed, so it does not land on this one.
        await run('sync', []);
        await new Promise((r) => setTimeout(r, 1000));
        const tgt = await freshTarget(dir, size, args);
        try {
          if (who === 'project') {
            const r = await runProject(uriOf(srcSock), tgt, args, list);
            ours.push(r.seconds);
            rss = Math.max(rss, r.rssMiB);
            bytes = r.bytes;
            tlsSession = r.tls;
            log(`${name} run ${i + 1}: project ${r.seconds.toFixed(2)} s, rss ${r.rssMiB.toFixed(0)} MiB`);
          } else {
            const s = await runNbdcopy(uriOf(srcSock), tgt);
            theirs.push(s);
            log(`${name} run ${i + 1}: nbdcopy ${s.toFixed(2)} s`);
          }
        } finally {
          await tgt.stop();
        }
      }
    }
  } finally {
    await src.stop();
    rmSync(raw, { force: true });
  }
  // Rates over the bytes of the copied extent list (the same for both).
  const basis = list === 'allocated' ? totalBytes(data) : totalBytes(list);
  const projectMiBps = basis / MiB / median(ours);
  const nbdcopyMiBps = basis / MiB / median(theirs);
  return {
    case: name,
    disk_GiB: args.sizeGiB,
    data_MiB: Math.round(basis / MiB),
    project_MiBps: Math.round(projectMiBps),
    nbdcopy_MiBps: Math.round(nbdcopyMiBps),
    ratio: Number((projectMiBps / nbdcopyMiBps).toFixed(3)),
    project_max_rss_MiB: Math.round(rss),
    project_s: ours.map((s) => Number(s.toFixed(3))),
    nbdcopy_s: theirs.map((s) => Number(s.toFixed(3))),
    runs: args.runs,
    request_size: args.requestSize,
    queue_depth: args.queueDepth,
    connections: args.connections,
    project_bytes_written_or_zeroed: bytes,
    comparison:
      name === 'extents'
        ? 'nbdcopy has no extent list: it copies the same sparse source (data only in the listed extents) with --destination-is-zero --flush'
        : 'nbdcopy --destination-is-zero --flush; project extents from base:allocation',
    target_tls: args.targetTls,
    target_tls_session: tlsSession,
    servers: `qemu-nbd -r -f raw -e ${args.shared} -> qemu-nbd -f qcow2 -e ${args.shared} --cache=${args.targetCache} --aio=${args.targetAio}${args.targetTls === 'psk' ? ' (TLS-PSK)' : ''}, unix sockets`,
    qcow2_opts: args.qcow2Opts ?? 'defaults',
  };
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const dir = mkdtempSync(join(args.dir, 'nbd-bench-'));
  try {
    for (const c of args.cases) {
      const line = await benchCase(c, dir, args);
      if (args.json) process.stdout.write(`${JSON.stringify(line)}\n`);
      else log(JSON.stringify(line, null, 2));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
