/**
 * Real NBD servers for tests: qemu-nbd, nbdkit, nbd-server, each on a Unix
 * socket (or TCP port) in a private temp dir. All commands go through
 * @sendense/process.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, run, waitFor } from '@sendense/process';

export class TempDir {
  readonly path = mkdtempSync(join(tmpdir(), 'nbd-test-'));
  file(name: string): string {
    return join(this.path, name);
  }
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

export interface Server {
  uri: string;
  daemon: Daemon;
  socket?: string;
  port?: number;
  stop(): Promise<void>;
}

async function waitSocket(daemon: Daemon, path: string): Promise<void> {
  await waitFor(
    () => {
      if (!daemon.running) throw daemon.exitError('NBD server stopped during start');
      return existsSync(path);
    },
    { timeoutMs: 10000, message: `socket ${path}` },
  );
}

/**
 * Is something listening on 127.0.0.1:port? Read from /proc/net/tcp rather
 * than by connecting: nbd-server -d treats a probe connection as a client.
 */
function listening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const lines = readFileSync('/proc/net/tcp', 'utf8').split('\n');
  return lines.some((l) => {
    const f = l.trim().split(/\s+/);
    return f[1]?.endsWith(`:${hex}`) && f[3] === '0A';
  });
}

async function waitPort(daemon: Daemon, port: number): Promise<void> {
  await waitFor(
    () => {
      if (!daemon.running) throw daemon.exitError('NBD server stopped during start');
      return listening(port);
    },
    { timeoutMs: 10000, message: `port ${port}` },
  );
}

let nextPort = 20000 + (process.pid % 20000);
export function freePort(): number {
  nextPort = nextPort >= 60000 ? 20000 : nextPort + 1;
  return nextPort;
}

function server(daemon: Daemon, uri: string, extra: Partial<Server>): Server {
  return { uri, daemon, ...extra, stop: () => daemon.stop(2000) };
}

export interface QemuNbdOptions {
  format: 'raw' | 'qcow2';
  exportName?: string;
  readOnly?: boolean;
  /** -e: allow this many clients (qemu then advertises multi-conn). */
  shared?: number;
  bitmaps?: string[];
  port?: number;
  /** Socket path to use (default dir/qemu-<n>.sock). */
  socket?: string;
  /** TLS-PSK: a directory holding keys.psk ("identity:hexkey"), as the nbd-exporter writes it. */
  pskDir?: string;
}

let counter = 0;

export async function qemuNbd(dir: TempDir, image: string, o: QemuNbdOptions): Promise<Server> {
  const name = o.exportName ?? 'disk';
  const args = ['-f', o.format, '-x', name, '--persistent', '--cache=writeback'];
  if (o.readOnly) args.push('-r');
  if (o.shared) args.push('-e', String(o.shared));
  for (const b of o.bitmaps ?? []) args.push('-B', b);
  if (o.pskDir) args.push('--object', `tls-creds-psk,id=tls0,endpoint=server,dir=${o.pskDir}`, '--tls-creds', 'tls0');
  if (o.port) {
    args.push('-b', '127.0.0.1', '-p', String(o.port), image);
    const daemon = await Daemon.start('qemu-nbd', args);
    await waitPort(daemon, o.port);
    return server(daemon, `nbd://127.0.0.1:${o.port}/${name}`, { port: o.port });
  }
  const sock = o.socket ?? dir.file(`qemu-${++counter}.sock`);
  rmSync(sock, { force: true });
  args.push('-k', sock, image);
  const daemon = await Daemon.start('qemu-nbd', args);
  await waitSocket(daemon, sock);
  return server(daemon, `nbd+unix:///${name}?socket=${sock}`, { socket: sock });
}

/** nbdkit PLUGIN [args] with filters, serving export "" on a Unix socket. */
export async function nbdkit(dir: TempDir, plugin: string, pluginArgs: string[], filters: string[] = [], extra: string[] = []): Promise<Server> {
  const sock = dir.file(`nbdkit-${++counter}.sock`);
  // Filter parameters go after the plugin name, with the plugin's own.
  const args = ['-f', '-U', sock, ...filters.map((f) => `--filter=${f}`), plugin, ...pluginArgs, ...extra];
  const daemon = await Daemon.start('nbdkit', args);
  await waitSocket(daemon, sock);
  return server(daemon, `nbd+unix:///?socket=${sock}`, { socket: sock });
}

/**
 * nbd-server with a minimal config serving one raw file. It forks per
 * client and daemonizes (its -d debug mode serves one client at a time,
 * which a multi-conn client would deadlock on), so it is tracked by pid file.
 */
export async function nbdServer(dir: TempDir, file: string, exportName = 'raw'): Promise<Server> {
  const port = freePort();
  const conf = dir.file(`nbd-server-${++counter}.conf`);
  const pidFile = dir.file(`nbd-server-${counter}.pid`);
  writeFileSync(
    conf,
    ['[generic]', `    port = ${port}`, '    listenaddr = 127.0.0.1', '    allowlist = true', '', `[${exportName}]`, `    exportname = ${file}`, ''].join('\n'),
  );
  const daemon = await Daemon.start('nbd-server', ['-C', conf, '-p', pidFile]);
  await daemon.exited;
  await waitFor(() => existsSync(pidFile) && listening(port), { timeoutMs: 10000, message: `nbd-server on port ${port}` });
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return {
    uri: `nbd://127.0.0.1:${port}/${exportName}`,
    daemon,
    port,
    stop: async () => {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return; // already gone
      }
      await waitFor(() => !existsSync(`/proc/${pid}`), { timeoutMs: 5000, message: `nbd-server ${pid} to exit` }).catch(() => process.kill(pid, 'SIGKILL'));
    },
  };
}

export async function sha256(file: string): Promise<string> {
  const r = await run('sha256sum', [file]);
  return r.stdout.split(' ')[0];
}

export function sha256Buffer(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Create an image: raw (sparse) or qcow2, optionally with a backing file. */
export async function createImage(path: string, format: 'raw' | 'qcow2', size: number, backing?: { file: string; format: 'raw' | 'qcow2' }): Promise<void> {
  const args = ['create', '-q', '-f', format];
  if (backing) args.push('-b', backing.file, '-F', backing.format);
  args.push(path, String(size));
  await run('qemu-img', args);
}

/** Write bytes into a file at offset with qemu-io (works for raw and qcow2). */
export async function qemuIoWrite(file: string, format: 'raw' | 'qcow2', ops: string[]): Promise<void> {
  const args = ['-f', format];
  for (const op of ops) args.push('-c', op);
  args.push(file);
  await run('qemu-io', args);
}

export async function qemuImgCompare(a: string, fa: 'raw' | 'qcow2', b: string, fb: 'raw' | 'qcow2'): Promise<void> {
  // Exit 0: identical; 1: differ (CommandError with the first differing offset).
  await run('qemu-img', ['compare', '-U', '-q', '-f', fa, '-F', fb, a, b]).catch(async () => {
    const r = await run('qemu-img', ['compare', '-U', '-f', fa, '-F', fb, a, b], { okExitCodes: [0, 1] });
    throw new Error(`images differ: ${r.stdout.trim()}`);
  });
}
