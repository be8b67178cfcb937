import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Layout of the state dir:
 *   conf.d/<name>.conf   nbd-server config of one export
 *   run/<name>.pid       pid file of the server of one export
 *   exports.json         records (file store)
 * Every server gets its pid file path on its command line, so a /proc scan
 * finds our servers (even after a crash) and tells which export each serves.
 */
export class StatePaths {
  readonly confDir: string;
  readonly runDir: string;

  constructor(readonly stateDir: string) {
    this.confDir = join(stateDir, 'conf.d');
    this.runDir = join(stateDir, 'run');
  }

  async ensure(): Promise<void> {
    await mkdir(this.confDir, { recursive: true, mode: 0o700 });
    await mkdir(this.runDir, { recursive: true, mode: 0o700 });
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
  }
}
