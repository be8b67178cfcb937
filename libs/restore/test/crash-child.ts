/**
 * Run as a separate process by the crash test: mounts a restore point, says
 * so on stdout, then idles until it is killed with SIGKILL.
 */
import { MountManager } from '../src/lib/mount-manager';

async function main(): Promise<void> {
  const [mountRoot, runDir, image] = process.argv.slice(2);
  if (!mountRoot || !runDir || !image) throw new Error('usage: crash-child <mountRoot> <runDir> <image>');
  const manager = new MountManager({ mountRoot, runDir, idleTimeoutMs: 0, mode: 'fuse' });
  const info = await manager.mount({ imagePath: image });
  process.stdout.write(`MOUNTED ${info.mountId}\n`);
  setInterval(() => undefined, 60000);
}

main().catch((err: unknown) => {
  process.stderr.write(`crash-child failed: ${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
