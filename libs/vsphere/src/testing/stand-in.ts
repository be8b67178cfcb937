import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Daemon, run, waitFor } from '@sendense/process';
import { HarnessClient } from './harness-client';

/**
 * Start the VMware stand-in (tools/vcsim) from tests: govmomi's simulator
 * plus qemu-backed disks with change tracking. See tools/vcsim/README.md.
 */

export interface StandInDiskConfig {
  sizeMiB: number;
  content?:
    | { type: 'empty' }
    | { type: 'random'; percent?: number; seed?: number }
    | {
        type: 'filesystem';
        filesystem: 'ext4' | 'xfs';
        partitionTable?: 'gpt' | 'mbr';
        files?: Record<string, string>;
        randomFiles?: Record<string, number>;
        seed?: number;
      };
}

export interface StandInVmConfig {
  name: string;
  guestId?: string;
  changeTrackingEnabled?: boolean;
  disks: StandInDiskConfig[];
  /** Inventory folder below the datacenter's vm folder, e.g. `prod/web` (made when missing); none: the vm folder itself. */
  folder?: string;
}

export interface StandInOptions {
  /** Harness VMs (besides the simulator's own DC0_* VMs). */
  vms?: StandInVmConfig[];
  /** Where disk images, sockets and the config go. */
  stateDir: string;
  /** Serve the unmodified simulator: no harness VMs, no QueryChangedDiskAreas. */
  plain?: boolean;
  /** Simulate a standalone ESXi host instead of vCenter. */
  esx?: boolean;
  /** Bytes per QueryChangedDiskAreas answer (default 16 MiB). */
  cbtWindowBytes?: number;
  username?: string;
  password?: string;
  /** Expire idle sessions after this many ms (0/undefined: never). */
  sessionIdleTimeoutMs?: number;
  startTimeoutMs?: number;
}

export interface StandIn {
  /** SOAP endpoint, https://127.0.0.1:PORT/sdk (self-signed certificate). */
  url: string;
  username: string;
  password: string;
  /** SHA-1 thumbprint of the certificate, colon separated. */
  thumbprint: string;
  /** Base URL of the harness API (undefined with `plain`). */
  harnessUrl?: string;
  harness?: HarnessClient;
  pid: number;
  /** SIGTERM; resolves once the stand-in and its qemu daemons are gone. */
  stop(): Promise<void>;
}

function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'tools', 'vcsim', 'build.sh'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find tools/vcsim/build.sh above ' + __dirname);
    dir = up;
  }
  return dir;
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : entry.name.endsWith('.go') ? statSync(p).mtimeMs : 0);
  }
  return newest;
}

/** Path of the stand-in binary, built first if missing or stale (cold build ~2 min, cached after). */
export async function ensureStandInBuilt(): Promise<string> {
  const vcsim = join(repoRoot(), 'tools', 'vcsim');
  const bin = join(vcsim, 'bin', 'sendense-vcsim');
  if (!existsSync(bin) || statSync(bin).mtimeMs < newestSource(join(vcsim, 'src'))) {
    await run(join(vcsim, 'build.sh'), [], { timeoutMs: 10 * 60 * 1000 });
  }
  return bin;
}

export async function startStandIn(options: StandInOptions): Promise<StandIn> {
  const bin = await ensureStandInBuilt();
  const stateDir = resolve(options.stateDir);
  mkdirSync(stateDir, { recursive: true });
  const args = ['--state-dir', stateDir, '--listen', '127.0.0.1:0'];
  if (options.plain) args.push('--plain');
  else {
    const config = join(stateDir, 'config.json');
    writeFileSync(config, JSON.stringify({ vms: options.vms ?? [] }, null, 2));
    args.push('--config', config);
  }
  if (options.esx) args.push('--esx');
  if (options.cbtWindowBytes) args.push('--cbt-window-bytes', String(options.cbtWindowBytes));
  if (options.username) args.push('--username', options.username);
  if (options.password) args.push('--password', options.password);
  if (options.sessionIdleTimeoutMs) args.push('--session-idle-timeout', `${options.sessionIdleTimeoutMs}ms`);

  let ready: Record<string, unknown> | undefined;
  const daemon = await Daemon.start(bin, args, {
    onLine: (line, stream) => {
      if (stream !== 'stdout' || !line.startsWith('{')) return;
      try {
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (msg['event'] === 'ready') ready = msg;
      } catch {
        // not a status line
      }
    },
  });
  try {
    await waitFor(
      () => {
        if (!daemon.running) throw daemon.exitError('the VMware stand-in stopped during start');
        return ready !== undefined;
      },
      { timeoutMs: options.startTimeoutMs ?? 120000, message: 'the VMware stand-in to report ready' },
    );
  } catch (err) {
    await daemon.stop(15000);
    throw err;
  }
  const r = ready as Record<string, string>;
  const harnessUrl = r['harnessUrl'] || undefined;
  const harness = harnessUrl ? new HarnessClient(harnessUrl) : undefined;
  return {
    url: r['url'],
    username: r['username'],
    password: r['password'],
    thumbprint: r['thumbprint'] ?? '',
    harnessUrl,
    harness,
    pid: daemon.pid ?? -1,
    stop: async () => {
      await harness?.close();
      await daemon.stop(20000);
    },
  };
}
