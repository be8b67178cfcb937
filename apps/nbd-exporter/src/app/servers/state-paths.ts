import { mkdir, readdir, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** sun_path is 108 bytes with its terminating NUL. */
export const MAX_SOCKET_PATH = 107;

/**
 * Layout of the state dir:
 *   conf.d/<name>.conf   nbd-server config of one export
 *   run/<name>.pid       pid file of the server of one export
 *   overlays/<name>.qcow2  temporary overlay of a writable instant-access export
 *   psk/<name>/keys.psk    TLS pre-shared key of one export (0600)
 *   sockets/<hash>.sock    Unix socket of one export (transport unix; a short hash of
 *                          the name, as a socket path may hold 107 bytes at most)
 *   exports.json         records (file store)
 * Every server gets its pid file path on its command line, so a /proc scan
 * finds our servers (even after a crash) and tells which export each serves.
 */
export class StatePaths {
  readonly confDir: string;
  readonly runDir: string;
  readonly overlayDir: string;
  readonly pskRoot: string;
  readonly socketDir: string;

  constructor(readonly stateDir: string) {
    this.confDir = join(stateDir, 'conf.d');
    this.runDir = join(stateDir, 'run');
    this.overlayDir = join(stateDir, 'overlays');
    this.pskRoot = join(stateDir, 'psk');
    this.socketDir = join(stateDir, 'sockets');
  }

  async ensure(): Promise<void> {
    for (const dir of [this.confDir, this.runDir, this.overlayDir, this.pskRoot, this.socketDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
  }

  overlayFile(name: string): string {
    return join(this.overlayDir, `${name}.qcow2`);
  }

  /** The directory qemu's tls-creds-psk reads keys.psk from. */
  pskDir(name: string): string {
    return join(this.pskRoot, name);
  }

  /** Exports that have an overlay or a key on disk (to find those of no kept export). */
  async exportsWithFiles(): Promise<string[]> {
    const overlays = (await readdir(this.overlayDir).catch(() => [] as string[])).filter((f) => f.endsWith('.qcow2')).map((f) => f.slice(0, -'.qcow2'.length));
    const keys = await readdir(this.pskRoot).catch(() => [] as string[]);
    return [...new Set([...overlays, ...keys])];
  }

  /** The Unix socket of an export: the name's hash keeps the path short whatever the state dir's depth allows. */
  socketFile(name: string): string {
    return join(this.socketDir, `${createHash('sha256').update(name).digest('hex').slice(0, 20)}.sock`);
  }

  pidFile(name: string): string {
    return join(this.runDir, `${name}.pid`);
  }

  confFile(name: string): string {
    return join(this.confDir, `${name}.conf`);
  }

  /** The export a server process serves, read from its pid-file argument. */
  exportNameFromArgv(argv: readonly string[]): string | null {
    const prefix = `${this.runDir}/`;
    for (const arg of argv) {
      if (arg.startsWith(prefix) && arg.endsWith('.pid')) return arg.slice(prefix.length, -'.pid'.length);
    }
    return null;
  }

  async configuredExports(): Promise<string[]> {
    const files = await readdir(this.confDir).catch(() => [] as string[]);
    return files.filter((f) => f.endsWith('.conf')).map((f) => f.slice(0, -'.conf'.length));
  }

  async removeFiles(name: string): Promise<void> {
    await rm(this.confFile(name), { force: true });
    await rm(this.pidFile(name), { force: true });
    await rm(this.overlayFile(name), { force: true });
    await rm(this.pskDir(name), { recursive: true, force: true });
    await rm(this.socketFile(name), { force: true });
  }

  /** Socket files of no export in `names` (left by a server that died without removing its socket). */
  async straySockets(names: ReadonlySet<string>): Promise<string[]> {
    const keep = new Set([...names].map((n) => this.socketFile(n)));
    const files = await readdir(this.socketDir).catch(() => [] as string[]);
    return files
      .filter((f) => f.endsWith('.sock'))
      .map((f) => join(this.socketDir, f))
      .filter((f) => !keep.has(f));
  }
}
