import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@sendense/process';
import type { ExporterConfig } from '../app/config/exporter-config';

/**
 * A scratch environment for tests with real servers: an allowed root, a
 * state dir and a port range of its own (random, so parallel suites and
 * other sessions on the machine do not collide).
 */
export interface TestEnv {
  dir: string;
  root: string;
  stateDir: string;
  config: ExporterConfig;
  cleanup(): Promise<void>;
}

export async function makeTestEnv(ports = 60): Promise<TestEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'nbdexp-'));
  const root = join(dir, 'repo');
  const stateDir = join(dir, 'state');
  await run('mkdir', ['-p', root, stateDir]);
  // Below the ephemeral range (32768+), where outgoing connections take ports at random.
  const first = 20000 + Math.floor(Math.random() * 120) * 100;
  return {
    dir,
    root,
    stateDir,
    config: {
      rpcHost: '127.0.0.1',
      rpcPort: first + ports + 1,
      listenAddress: '127.0.0.1',
      portRange: { first, last: first + ports - 1 },
      stateDir,
      allowedRoots: [root],
      nodeName: 'test-node',
      tlsCredsDir: null,
      restoreTls: 'none',
      socketGroup: null,
      idleSweepMs: 15_000,
      recordStore: 'file',
      databaseUrl: 'mysql://root@127.0.0.1:3306/unused',
      metricsPort: 0,
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export async function qcow2(path: string, size: string, backing?: string): Promise<string> {
  const args = ['create', '-q', '-f', 'qcow2', ...(backing ? ['-b', backing, '-F', 'qcow2'] : []), path, size];
  await run('qemu-img', args);
  return path;
}

export async function rawFile(path: string, size: string): Promise<string> {
  await run('truncate', ['-s', size, path]);
  return path;
}

/** Export size as seen by an NBD client, or null when the export cannot be reached. */
export async function nbdSize(uri: string): Promise<number | null> {
  try {
    const r = await run('nbdinfo', ['--size', uri], { timeoutMs: 10_000 });
    return Number(r.stdout.trim());
  } catch {
    return null;
  }
}
