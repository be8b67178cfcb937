import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createConnection, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { run } from '@sendense/process';
import { startStandIn, type StandIn, type StandInOptions } from '@sendense/vsphere';
import { registerStandIn, startSystem, waitForJob, type System } from './system';

/**
 * What every fault scenario (tests/faults/) builds on: the built services,
 * the VMware stand-in with the scenario's VMs imported, a repository, and
 * the after-checks the issue asks for (committed points read back, nothing
 * left behind, the next backup succeeds).
 */

export const MiB = 1024 * 1024;

/** Bytes allocated on disk by the QCOW2 images under a directory (how far a copy into a restore point has got). */
export async function allocatedQcow2Bytes(dir: string): Promise<number> {
  let sum = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!e.isFile() || !e.name.endsWith('.qcow2')) continue;
    const st = await stat(join(e.parentPath, e.name)).catch(() => null);
    if (st) sum += st.blocks * 512;
  }
  return sum;
}

export interface BackupRow {
  id: string;
  disk_id: number;
  backup_type: string;
  requested_type: string;
  fallback_reason: string | null;
  status: string;
  bytes_transferred: number;
  parent_backup_id: string | null;
  repository_path: string;
  error_message: string | null;
  suspect_reason: string | null;
  cbt_audit: { sampled: number; mismatched: number; mismatchOffsets: number[]; blockSize: number; bytesRead: number; durationMs: number } | null;
}

export interface JobDoc {
  status: string;
  error: string | null;
  backups: BackupRow[];
  events: { level: string; phase: string; message: string }[];
}

/**
 * A cuttable TCP proxy in front of one of the stand-in's snapshot NBD
 * sockets: `cut()` drops every connection through it at once (the Capture
 * Agent sees its NBD connection to the snapshot reset), `refuse(true)` drops
 * each new one at once (reconnects fail) until `refuse(false)`. Counts the
 * bytes the server sent through it (what the agent read, protocol included).
 */
export class NbdProxy {
  bytesFromServer = 0;
  connections = 0;
  cuts = 0;
  private refusing = false;
  private readonly live = new Set<Socket>();
  private readonly server: TcpServer;
  port = 0;

  private constructor(socketPath: string) {
    this.server = createTcpServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      this.connections++;
      const upstream = createConnection(socketPath);
      this.live.add(client);
      this.live.add(upstream);
      upstream.on('data', (b: Buffer) => {
        this.bytesFromServer += b.length;
      });
      client.pipe(upstream);
      upstream.pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.live.delete(client);
        this.live.delete(upstream);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
  }

  static async start(socketPath: string): Promise<NbdProxy> {
    const proxy = new NbdProxy(socketPath);
    await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', r));
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  /** Every connection through the proxy dropped (reset) now. */
  cut(): void {
    this.cuts++;
    for (const s of this.live) {
      // A TCP reset towards the agent; the Unix socket side cannot be reset, only closed.
      if (s.remoteAddress) s.resetAndDestroy();
      else s.destroy();
    }
    this.live.clear();
  }

  /** While true, a new connection is dropped as soon as it arrives. */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  get open(): number {
    return this.live.size / 2;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * The stand-in's harness API as the Capture Agent sees it when a fault
 * spec registers the stand-in with `harnessUrl` of this (startFaultBed's
 * `nbdProxy`): every request is passed through, except that the answer to
 * "where is this snapshot disk served over NBD" names an NbdProxy in front
 * of the real socket (one per socket, kept for the bed's life), so the spec
 * can cut the agent's connection to the snapshot mid-copy. Nothing in the
 * product changes for it: the agent reads where the harness says.
 */
export class HarnessNbdProxy {
  readonly proxies = new Map<string, NbdProxy>();
  /** The proxy the last snapshot NBD answer named. */
  last: NbdProxy | undefined;
  private readonly dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  private readonly server: HttpServer;
  url = '';

  private constructor(upstream: string) {
    this.server = createHttpServer((req, res) => {
      void this.pass(upstream, req, res).catch((err: unknown) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `harness proxy: ${String(err)}` }));
      });
    });
  }

  static async start(upstream: string): Promise<HarnessNbdProxy> {
    const h = new HarnessNbdProxy(upstream);
    await new Promise<void>((r) => h.server.listen(0, '127.0.0.1', r));
    h.url = `http://127.0.0.1:${(h.server.address() as { port: number }).port}/harness`;
    return h;
  }

  private async pass(upstream: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = (req.url ?? '/').replace(/^\/harness/, '');
    const up = await fetch(`${upstream}${path}`, {
      method: req.method,
      dispatcher: this.dispatcher,
      headers: req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : undefined,
      body: chunks.length ? Buffer.concat(chunks) : undefined,
    });
    let body = Buffer.from(await up.arrayBuffer());
    if (up.ok && req.method === 'GET' && /\/snapshots\/[^/]+\/disks\/\d+\/nbd$/.test(path)) {
      const where = JSON.parse(body.toString('utf8')) as { uri: string; socket: string; exportName: string };
      let proxy = this.proxies.get(where.socket);
      if (!proxy) {
        proxy = await NbdProxy.start(where.socket);
        this.proxies.set(where.socket, proxy);
      }
      this.last = proxy;
      body = Buffer.from(JSON.stringify({ ...where, uri: `nbd://127.0.0.1:${proxy.port}/${encodeURIComponent(where.exportName)}` }));
    }
    res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
    res.end(body);
  }

  async stop(): Promise<void> {
    for (const p of this.proxies.values()) await p.stop();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    await this.dispatcher.close();
  }
}

export interface FaultBed {
  sys: System;
  standIn: StandIn;
  /** With `nbdProxy`: the harness proxy whose NbdProxy instances sit between the agent and the snapshots. */
  harnessProxy?: HarnessNbdProxy;
  work: string;
  /** Device keys of each VM's disks, by VM name. */
  keys: Map<string, number[]>;
  sizes: Map<string, number[]>;
  stop(): Promise<void>;
}

export async function startFaultBed(opts: {
  vms: NonNullable<StandInOptions['vms']>;
  repositories?: { name: string; cbt_audit_samples?: number }[];
  env?: Record<string, string>;
  /** The VMs `vcenter import` imports (default: all of `vms`). */
  importVms?: string[];
  /** The agent reads the snapshots through cuttable TCP proxies (HarnessNbdProxy). */
  nbdProxy?: boolean;
}): Promise<FaultBed> {
  const work = await mkdtemp(join(tmpdir(), 'sendense-fault-'));
  const standIn = await startStandIn({ stateDir: join(work, 'vcsim'), vms: opts.vms });
  let sys: System | undefined;
  let harnessProxy: HarnessNbdProxy | undefined;
  try {
    harnessProxy = opts.nbdProxy ? await HarnessNbdProxy.start(standIn.harnessUrl!) : undefined;
    sys = await startSystem({ env: opts.env ?? {} });
    await registerStandIn(sys, standIn, opts.importVms ?? opts.vms.map((v) => v.name), harnessProxy ? { harnessUrl: harnessProxy.url } : {});
    for (const r of opts.repositories ?? [{ name: 'local' }]) {
      const res = await sys.call('POST', '/api/v1/repositories', { type: 'local', path: join(sys.repoDir, r.name), ...r });
      if (res.status !== 201) throw new Error(`repository ${r.name} answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
    const vms = await sys.call<{ vm_name: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
    const keys = new Map(vms.body.map((v) => [v.vm_name, v.disks.map((d) => d.device_key)]));
    const sizes = new Map(opts.vms.map((v) => [v.name, (v.disks ?? []).map((d) => d.sizeMiB * MiB)]));
    const s = sys;
    const hp = harnessProxy;
    return {
      sys: s,
      standIn,
      harnessProxy: hp,
      work,
      keys,
      sizes,
      async stop() {
        await s.stop();
        await hp?.stop();
        await standIn.stop();
        await rm(work, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await sys?.stop();
    await harnessProxy?.stop();
    await standIn.stop();
    throw err;
  }
}

/** Start a backup and wait for its end (any end). */
export async function backupRun(
  bed: FaultBed,
  vm: string,
  type: 'full' | 'incremental' | 'differential',
  repository = 'local',
): Promise<JobDoc & { runId: string; seconds: number }> {
  const started = Date.now();
  const start = await bed.sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: vm, backup_type: type, repository });
  if (start.status !== 202) throw new Error(`backup start answered ${start.status}: ${JSON.stringify(start.body)}`);
  const doc = await waitForJob<JobDoc>(bed.sys, start.body.run_id);
  return { ...doc, runId: start.body.run_id, seconds: (Date.now() - started) / 1000 };
}

/** A backup that must complete. */
export async function backupOk(bed: FaultBed, vm: string, type: 'full' | 'incremental' | 'differential', repository = 'local') {
  const doc = await backupRun(bed, vm, type, repository);
  if (doc.status !== 'completed') {
    throw new Error(`backup ${type} of ${vm} ended ${doc.status}: ${doc.error}\n${bed.sys.logs.get('backup-worker')?.slice(-20).join('\n')}`);
  }
  return doc;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The live guest disk now, hashed. */
export async function guestDigest(bed: FaultBed, vm: string, disk: number): Promise<string> {
  const h = createHash('sha256');
  const size = bed.sizes.get(vm)![disk]!;
  for (let off = 0; off < size; off += 32 * MiB) h.update(await bed.standIn.harness!.read(vm, bed.keys.get(vm)![disk]!, off, Math.min(32 * MiB, size - off)));
  return h.digest('hex');
}

/** What a restore point reads back as (its whole chain), hashed. */
export async function restorePointDigest(bed: FaultBed, b: Pick<BackupRow, 'id' | 'repository_path'>, repository = 'local'): Promise<string> {
  const raw = join(bed.work, `${b.id}.raw`);
  await run('qemu-img', ['convert', '-U', '-O', 'raw', join(bed.sys.repoDir, repository, b.repository_path), raw], { timeoutMs: 120_000 });
  try {
    return sha(await readFile(raw));
  } finally {
    await rm(raw, { force: true });
  }
}

/**
 * What a fault may not leave behind: NBD exports (rows and servers), VM
 * snapshots, mounts, loop devices, FUSE exports, qemu/nbd processes of this
 * system, and half-written restore points or temp files in the repository.
 * Returns the list of leftovers (empty when clean).
 */
export async function leftovers(bed: FaultBed): Promise<string[]> {
  const out: string[] = [];
  const dir = bed.sys.dir;
  const exports = await bed.sys.db.prisma.nbdExport.findMany({ where: { nodeName: bed.sys.node } });
  for (const e of exports) out.push(`nbd_exports row ${e.name} (${e.state}) for ${e.filePath}`);
  for (const vm of await bed.standIn.harness!.vms()) {
    for (const d of vm.disks) for (const s of d.snapshots) out.push(`snapshot ${s} on ${vm.name} disk ${d.key}`);
  }
  const mounts = await readFile('/proc/mounts', 'utf8');
  for (const line of mounts.split('\n')) if (line.includes(dir)) out.push(`mount: ${line}`);
  const loops = await run('losetup', ['-J', '-l'], { timeoutMs: 10_000 }).catch(() => ({ stdout: '{"loopdevices":[]}' }));
  const parsed = JSON.parse(loops.stdout || '{"loopdevices":[]}') as { loopdevices: { name: string; 'back-file': string | null }[] };
  for (const l of parsed.loopdevices) if (l['back-file']?.includes(dir)) out.push(`loop device ${l.name} on ${l['back-file']}`);
  const ps = await run('ps', ['-eo', 'pid=,args='], { timeoutMs: 10_000 });
  for (const line of ps.stdout.split('\n')) {
    if (/qemu-nbd|qemu-storage-daemon|nbd-server|nbdkit|nbdcopy/.test(line) && line.includes(dir)) out.push(`process: ${line.trim()}`);
  }
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.(partial|tmp|writing)$|^\.tmp|\.journal$/.test(e.name)) out.push(`temp file ${p}`);
      else if (e.name.endsWith('.json') && !e.name.startsWith('.')) {
        const text = await readFile(p, 'utf8').catch(() => '');
        if (text.includes('"state": "writing"')) out.push(`half-written restore point ${p}`);
      }
    }
  };
  await walk(bed.sys.repoDir);
  return out;
}

/**
 * Start a backup and SIGKILL the backup-worker once its restore point holds
 * `afterBytes` (mid-copy). Returns the run and when the worker died.
 */
export async function killMidCopy(bed: FaultBed, vm: string, type: 'full' | 'incremental', afterBytes = 4 * MiB): Promise<{ runId: string; killedAt: number }> {
  const before = await allocatedQcow2Bytes(bed.sys.repoDir);
  const start = await bed.sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: vm, backup_type: type, repository: 'local' });
  if (start.status !== 202) throw new Error(`backup start answered ${start.status}: ${JSON.stringify(start.body)}`);
  const { waitFor } = await import('@sendense/process');
  await waitFor(async () => (await allocatedQcow2Bytes(bed.sys.repoDir)) - before >= afterBytes, {
    timeoutMs: 120_000,
    intervalMs: 5,
    message: 'the restore point to grow',
  });
  const worker = bed.sys.daemons.get('backup-worker')!;
  process.kill(worker.pid!, 'SIGKILL');
  const killedAt = Date.now();
  await waitFor(() => !worker.running, { timeoutMs: 10_000, message: 'the worker to die' });
  return { runId: start.body.run_id, killedAt };
}
