import { writeFile, rm } from 'node:fs/promises';
import { CommandError, isAlive, pidListensOn, readPidFile, run, terminate, waitFor } from '@sendense/process';
import { internal } from '../exporter-error';
import { PortTakenError, type LaunchSpec, type ServerLauncher } from './server-launcher';
import type { StatePaths } from './state-paths';

/**
 * Raw files and block devices through nbd-server, ONE PROCESS PER EXPORT.
 *
 * Why not one shared nbd-server with `includedir` and SIGHUP: nbd-server(1)
 * says a reload "does not modify any existing export, it only appends new
 * ones", and measured on Debian nbd-server 3.24 here:
 * - a file removed from the includedir (or a section from the main config)
 *   + SIGHUP: the export is still served (pinned by a characterization test);
 * - a file added + SIGHUP: depending on the layout of the config, the export
 *   appears, or the server aborts ("free(): invalid pointer"), or connections
 *   to the new and then the old exports are reset ("corrupted size vs.
 *   prev_size"): memory corruption, nothing to build on;
 * - open connections survive SIGHUP (they are forked children).
 * So a reload can neither add nor remove exports safely, and a crash of the
 * shared server would take every raw export down. Each export instead gets
 * its own complete config file in conf.d/ and its own nbd-server; removing
 * the export is SIGTERM to that server, which also ends its connection
 * children, so a removed export really stops being served. Other exports
 * never see a signal, so their connections are never touched.
 *
 * nbd-server's `-d` (foreground) mode serves one connection at a time, so it
 * runs daemonized; in daemon mode it exits 0 even when its bind fails, which
 * is why readiness is "this pid listens on this port" (from /proc).
 */
export class NbdServerLauncher implements ServerLauncher {
  readonly server = 'nbd-server' as const;

  constructor(private readonly paths: StatePaths) {}

  renderConfig(spec: LaunchSpec): string {
    // Name and path were validated (no brackets, '=', '#', '%', newlines), so they cannot break the format.
    return [
      '# Written by the sendense nbd-exporter. One nbd-server process serves this file;',
      '# do not edit: the exporter removes it with the export.',
      '[generic]',
      `    listenaddr = ${spec.host}`,
      `    port = ${spec.port}`,
      '    allowlist = false',
      `[${spec.name}]`,
      `    exportname = ${spec.filePath}`,
      `    readonly = ${spec.writable ? 'false' : 'true'}`,
      '    flush = true',
      '    fua = true',
      '',
    ].join('\n');
  }

  async start(spec: LaunchSpec): Promise<number> {
    const confFile = this.paths.confFile(spec.name);
    const pidFile = this.paths.pidFile(spec.name);
    await rm(pidFile, { force: true });
    await writeFile(confFile, this.renderConfig(spec), { mode: 0o600 });
    try {
      await run('nbd-server', ['-C', confFile, '-p', pidFile], { timeoutMs: 30_000 });
    } catch (err) {
      const text = err instanceof CommandError ? err.stderr.trim() || err.message : String(err);
      throw internal(`nbd-server failed to export ${spec.filePath} as ${spec.name}: ${text}`);
    }
    // The daemon writes its pid file itself, after the parent we ran has exited.
    const found: { pid: number | null } = { pid: null };
    try {
      await waitFor(
        async () => {
          found.pid = found.pid ?? (await readPidFile(pidFile));
          if (found.pid === null) return false;
          if (!(await isAlive(found.pid))) throw new PortTakenError(`nbd-server exited right after start (port ${spec.port} taken?)`);
          return pidListensOn(found.pid, spec.port);
        },
        { timeoutMs: 5000, intervalMs: 20, message: `nbd-server for ${spec.name} to listen on ${spec.port}` },
      );
    } catch (err) {
      if (found.pid !== null) await terminate(found.pid, 2000);
      if (err instanceof PortTakenError) throw err;
      throw internal((err as Error).message);
    }
    if (found.pid === null) throw internal(`nbd-server for ${spec.name} wrote no pid file`);
    return found.pid;
  }
}
