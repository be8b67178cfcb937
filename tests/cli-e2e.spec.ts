import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@sendense/process';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { freePort, ROOT, startSystem, type System } from './support/system';

/**
 * sendense-ctl end to end, driven as an operator drives it: the built CLI
 * (dist/apps/cli/main.js) against the real services and the VMware stand-in.
 */

const MiB = 1024 * 1024;
const VM = 'cli-vm';
const BAR_VM = 'cli-bar-vm';
const CLI = join(ROOT, 'dist/apps/cli/main.js');
const UNICODE = 'my files/résumé ñ 日本 copy.txt';
const UNICODE_TEXT = 'grüße aus der sicherung\n'.repeat(50);
const SUB_TEXT = 'nested\n';
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Deterministic bytes that do not compress or dedupe: 65 MiB + a tail, over the 64 MiB mark. */
function bigContent(): Buffer {
  const out = Buffer.alloc(65 * MiB + 4320);
  let x = 0x2545f491;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('sendense-ctl end to end', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let deviceKey: number;
  const big = bigContent();
  let fullId = '';
  let incrId = '';

  /** Run the built CLI with the test's settings (SENDENSE_API_URL/KEY, a private config dir). */
  async function cli(args: string[], extra: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Result> {
    const r = await run('node', [CLI, ...args], {
      env: { ...env, ...(extra.env ?? {}) },
      input: extra.input,
      okExitCodes: [0, 1, 2, 3, 4, 5, 6],
      timeoutMs: 300_000,
    });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }
  const ok = (r: Result) => {
    expect({ code: r.code, stderr: r.code ? r.stderr : '' }).toEqual({ code: 0, stderr: '' });
    return r;
  };
  const json = <T>(r: Result): T => JSON.parse(ok(r).stdout) as T;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-cli-e2e-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [
        {
          name: VM,
          disks: [
            {
              sizeMiB: 192,
              content: {
                type: 'filesystem',
                filesystem: 'ext4',
                partitionTable: 'gpt',
                files: { '/etc/hostname': 'cli-vm\n', [`/srv/${UNICODE}`]: UNICODE_TEXT, '/srv/sub/a.txt': SUB_TEXT },
                seed: 5,
              },
            },
          ],
        },
        // Big enough that a bar has time to move.
        { name: BAR_VM, disks: [{ sizeMiB: 384, content: { type: 'random', percent: 100, seed: 4 } }] },
      ],
    });
    sys = await startSystem();
    env = { ...sys.env, SENDENSE_API_URL: sys.api, SENDENSE_API_KEY: sys.adminKey, XDG_CONFIG_HOME: join(work, 'config'), HOME: work };
    // Set up through the CLI itself: vCenter, its VMs, a repository.
    const vc = json<{ id: string }>(
      await cli(
        [
          'vcenter',
          'add',
          '--name',
          'standin',
          '--url',
          standIn.url,
          '--username',
          standIn.username,
          '--password-stdin',
          '--insecure',
          '--standin-harness',
          standIn.harnessUrl!,
          '--json',
        ],
        {
          input: `${standIn.password}\n`,
        },
      ),
    );
    const imported = json<{ vm_name: string }[]>(await cli(['vcenter', 'import', vc.id, '--vm', VM, BAR_VM, '--json']));
    expect(imported.map((v) => v.vm_name).sort()).toEqual([BAR_VM, VM]);
    json(await cli(['repo', 'add', '--name', 'local', '--path', sys.repoDir, '--json']));
    const vms = json<{ vm_name: string; disks: { device_key?: number }[] }[]>(await cli(['vm', 'list', '--json']));
    expect(vms.map((v) => v.vm_name).sort()).toEqual([BAR_VM, VM]);
    const raw = await sys.call<{ vm_name: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
    deviceKey = raw.body.find((v) => v.vm_name === VM)!.disks[0]!.device_key;
    // The guest writes a file over 64 MiB before the first backup.
    await standIn.harness!.writeFile(VM, deviceKey, '/data/big.bin', big);
    await standIn.harness!.assertGuestFsClean(VM, deviceKey);
  }, 900_000);

  afterAll(async () => {
    await sys?.stop();
    await standIn?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('a full backup with --wait --json: one JSON document of the completed job', async () => {
    const doc = json<{ status: string; backups: { id: string; backup_type: string; status: string }[] }>(
      await cli(['backup', 'start', '--vm', VM, '--type', 'full', '--wait', '--json']),
    );
    expect(doc.status).toBe('completed');
    expect(doc.backups).toHaveLength(1);
    expect(doc.backups[0]).toMatchObject({ backup_type: 'full', status: 'completed' });
    fullId = doc.backups[0]!.id;
  }, 300_000);

  it('an incremental with --wait, piped: plain progress lines, no control characters', async () => {
    await standIn.harness!.writeFile(VM, deviceKey, '/notes/after-full.txt', 'written after the full\n');
    await standIn.harness!.assertGuestFsClean(VM, deviceKey);
    const r = ok(await cli(['backup', 'start', '--vm', VM, '--type', 'incremental', '--wait']));
    expect(r.stdout + r.stderr).not.toMatch(CONTROL);
    expect(r.stderr).toMatch(/started incremental backup of cli-vm/);
    expect(r.stdout).toMatch(/status:\s+completed/);
    const list = json<{ total: number; items: { id: string; backup_type: string; parent_backup_id: string | null }[] }>(
      await cli(['backup', 'list', '--vm', VM, '--json']),
    );
    expect(list.total).toBe(2);
    const incr = list.items.find((b) => b.backup_type === 'incremental')!;
    expect(incr.parent_backup_id).toBe(fullId);
    incrId = incr.id;
  }, 300_000);

  it('list, chain and show render for an 80-column terminal', async () => {
    const list = ok(await cli(['backup', 'list', '--vm', VM]));
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+DISK\s+TYPE\s+STATUS\s+SIZE\s+TIME$/);
    expect(lines).toHaveLength(3);
    expect(list.stdout).toContain(fullId);
    expect(list.stdout).toMatch(/\d+(\.\d)? (MiB|KiB)/);
    expect(list.stdout).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    const chain = ok(await cli(['backup', 'chain', '--vm', VM]));
    expect(chain.stdout).toMatch(/disk 0: 2 restore points/);
    const chainDoc = json<{ chains: { total_backups: number; restore_points: { id: string }[] }[] }>(await cli(['backup', 'chain', '--vm', VM, '--json']));
    expect(chainDoc.chains[0]!.restore_points.map((p) => p.id)).toEqual([fullId, incrId]);
    const show = ok(await cli(['backup', 'show', fullId]));
    expect(show.stdout).toMatch(new RegExp(`dependents:\\s+${incrId}`));
    expect(show.stdout).toMatch(/type:\s+full/);
  }, 120_000);

  describe('restore', () => {
    let mountId = '';
    let part = '';

    it('mount prints the mount id and partitions; ls lists with octal modes', async () => {
      const m = ok(await cli(['backup', 'mount', '--backup-id', incrId]));
      mountId = m.stdout.split('\n')[0]!.trim();
      expect(mountId).toMatch(/^[0-9a-f-]{36}$/);
      expect(m.stdout).toMatch(/PARTITION\s+FS\s+SIZE\s+STATE/);
      const mounts = json<{ mount_id: string; partitions: { name: string; fsType: string; mounted: boolean }[] }[]>(await cli(['backup', 'mounts', '--json']));
      part = mounts.find((x) => x.mount_id === mountId)!.partitions.find((p) => p.fsType === 'ext4')!.name;
      const ls = ok(await cli(['backup', 'ls', '--mount', mountId, `${part}/srv`]));
      expect(ls.stdout.split('\n')).toEqual(expect.arrayContaining(['my files/', 'sub/']));
      const long = ok(await cli(['backup', 'ls', '--mount', mountId, `${part}/srv/my files`, '--long']));
      expect(long.stdout).toMatch(/-rw-r--r--\s+1\.\d KiB\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+résumé ñ 日本 copy\.txt/);
      const doc = json<{ entries: { name: string; mode: string; type: string }[] }>(await cli(['backup', 'ls', '--mount', mountId, `${part}/srv`, '--json']));
      expect(doc.entries.find((e) => e.name === 'sub')).toMatchObject({ type: 'dir', mode: '0755' });
      const notes = json<{ entries: { name: string }[] }>(await cli(['backup', 'ls', '--mount', mountId, `${part}/notes`, '--json']));
      expect(notes.entries.map((e) => e.name)).toEqual(['after-full.txt']);
    }, 180_000);

    it('extracts a file over 64 MiB and a unicode name byte for byte, through the existing mount', async () => {
      const out = join(work, 'out');
      await mkdir(out, { recursive: true });
      const r = json<{ output: string; size: number; partition: string }>(
        await cli(['backup', 'extract', '--backup-id', incrId, '--file', '/data/big.bin', '--output', out, '--json']),
      );
      expect(r).toMatchObject({ output: join(out, 'big.bin'), size: big.length, partition: part });
      expect(sha(await readFile(join(out, 'big.bin')))).toBe(sha(big));
      expect(await readdir(out)).toEqual(['big.bin']); // no temp file left
      const u = ok(await cli(['backup', 'extract', '--backup-id', incrId, '--file', `/srv/${UNICODE}`, '--output', join(out, 'u.txt')]));
      expect(u.stdout).toContain(join(out, 'u.txt'));
      expect(await readFile(join(out, 'u.txt'), 'utf8')).toBe(UNICODE_TEXT);
      expect(((await stat(join(out, 'u.txt'))).mode & 0o777).toString(8)).toBe('644');
      // It used the mount that was there and left it mounted.
      const mounts = json<{ mount_id: string }[]>(await cli(['backup', 'mounts', '--json']));
      expect(mounts.map((m) => m.mount_id)).toEqual([mountId]);
    }, 180_000);

    it('--resume continues a partial download with a Range request', async () => {
      const out = join(work, 'resume');
      await mkdir(out, { recursive: true });
      const have = 40 * MiB + 17;
      await writeFile(join(out, 'big.bin.sendense-part'), big.subarray(0, have));
      const r = json<{ resumed_from: number; bytes: number }>(
        await cli(['backup', 'extract', '--backup-id', incrId, '--file', '/data/big.bin', '--output', out, '--resume', '--json']),
      );
      expect(r).toEqual(expect.objectContaining({ resumed_from: have, bytes: big.length - have }));
      expect(sha(await readFile(join(out, 'big.bin')))).toBe(sha(big));
      expect(await readdir(out)).toEqual(['big.bin']);
    }, 180_000);

    it('extracts a directory: names with spaces and unicode, nested files, modes', async () => {
      const dest = join(work, 'srv-copy');
      const r = json<{ output: string; entries: number }>(await cli(['backup', 'extract', '--backup-id', incrId, '--dir', '/srv', '--output', dest, '--json']));
      expect(r.output).toBe(dest);
      expect(await readFile(join(dest, UNICODE), 'utf8')).toBe(UNICODE_TEXT);
      expect(await readFile(join(dest, 'sub', 'a.txt'), 'utf8')).toBe(SUB_TEXT);
      expect((await readdir(dest)).sort()).toEqual(['my files', 'sub']);
      expect(((await stat(join(dest, 'sub'))).mode & 0o777).toString(8)).toBe('755');
      expect((await readdir(work)).filter((n) => n.includes('sendense-part'))).toEqual([]);
      const again = await cli(['backup', 'extract', '--backup-id', incrId, '--dir', '/srv', '--output', dest]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/already exists[\s\S]*next:/);
    }, 180_000);

    it('unmount; extract by backup id then mounts by itself and unmounts what it mounted', async () => {
      ok(await cli(['backup', 'unmount', mountId]));
      expect(json<unknown[]>(await cli(['backup', 'mounts', '--json']))).toEqual([]);
      const out = join(work, 'from-full');
      const r = ok(await cli(['backup', 'extract', '--backup-id', fullId, '--file', '/etc/hostname', '--output', out]));
      expect(r.stderr).toMatch(/mounting/);
      expect(await readFile(out, 'utf8')).toBe('cli-vm\n');
      expect(json<unknown[]>(await cli(['backup', 'mounts', '--json']))).toEqual([]);
      // The full has no /notes: not found, exit 3, and still nothing left mounted.
      const missing = await cli(['backup', 'extract', '--backup-id', fullId, '--file', '/notes/after-full.txt', '--output', join(work, 'nope')]);
      expect(missing.code).toBe(3);
      expect(missing.stderr).toMatch(/\/notes\/after-full\.txt is on none of the partitions[\s\S]*next:/);
      expect(json<unknown[]>(await cli(['backup', 'mounts', '--json']))).toEqual([]);
    }, 180_000);
  });

  it('delete is refused while an incremental depends on the full (exit 2, names it, says what to do)', async () => {
    const r = await cli(['backup', 'delete', fullId]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(incrId);
    expect(r.stderr).toMatch(/depend[\s\S]*next: merge the chain first: sendense-ctl backup consolidate/);
    expect(r.stdout).toBe('');
  }, 60_000);

  it('error cases: exit code and a message that says what to do next', async () => {
    const unknownVm = await cli(['backup', 'start', '--vm', 'no-such-vm', '--type', 'full']);
    expect(unknownVm.code).toBe(3);
    expect(unknownVm.stderr).toMatch(/no VM named no-such-vm[\s\S]*next:/);

    const badId = await cli(['backup', 'show', 'no-such-backup']);
    expect(badId.code).toBe(3);
    expect(badId.stderr).toMatch(/no backup with id no-such-backup[\s\S]*next:/);

    // A viewer key, made the bootstrap way (apikey create talks to the database).
    const viewer = ok(await cli(['apikey', 'create', '--role', 'viewer', '--name', 'cli e2e viewer'], { env: { DATABASE_URL: sys.db.url } })).stdout.trim();
    expect(viewer).toMatch(/^sdk_/);
    const denied = await cli(['backup', 'start', '--vm', VM, '--type', 'full'], { env: { SENDENSE_API_KEY: viewer } });
    expect(denied.code).toBe(4);
    expect(denied.stderr).toMatch(/permission denied[\s\S]*next: use a key with a role/);
    // The viewer may read.
    ok(await cli(['backup', 'list', '--vm', VM], { env: { SENDENSE_API_KEY: viewer } }));

    const badKey = await cli(['vm', 'list'], { env: { SENDENSE_API_KEY: 'sdk_nope_nope' } });
    expect(badKey.code).toBe(4);

    const down = await cli(['backup', 'list', '--vm', VM, '--api-url', `http://127.0.0.1:${await freePort()}`]);
    expect(down.code).toBe(5);
    expect(down.stderr).toMatch(/cannot reach the API gateway at http:\/\/127\.0\.0\.1:\d+[\s\S]*next: check that the gateway runs/);
    expect(down.stdout).toBe('');

    const usage = await cli(['backup', 'start', '--vm', VM, '--type', 'weekly']);
    expect(usage.code).toBe(2);
  }, 120_000);

  it('vcenter list, repo list, apikey list and revoke: tables for 80 columns, --json, a revoked key is refused', async () => {
    const vcs = json<{ id: string; name: string; url: string }[]>(await cli(['vcenter', 'list', '--json']));
    expect(vcs.map((v) => ({ name: v.name, url: v.url }))).toEqual([{ name: 'standin', url: standIn.url }]);
    const vcTable = ok(await cli(['vcenter', 'list'], { env: { COLUMNS: '80' } })).stdout;
    expect(vcTable).toContain(vcs[0]!.id);
    expect(
      vcTable
        .trimEnd()
        .split('\n')
        .every((l) => l.length <= 80),
    ).toBe(true);

    const repos = json<{ name: string; type: string; total_size_bytes: number; available_size_bytes: number }[]>(await cli(['repo', 'list', '--json']));
    expect(repos).toEqual([expect.objectContaining({ name: 'local', type: 'local' })]);
    expect(repos[0]!.total_size_bytes).toBeGreaterThan(repos[0]!.available_size_bytes);
    const repoTable = ok(await cli(['repo', 'list'], { env: { COLUMNS: '80' } })).stdout;
    expect(repoTable).toMatch(/^local\s+local\s/m);
    expect(repoTable).toMatch(/\d+(\.\d)? (KiB|MiB|GiB|TiB)/);

    const operator = ok(
      await cli(['apikey', 'create', '--role', 'operator', '--name', 'cli e2e revoke me'], { env: { DATABASE_URL: sys.db.url } }),
    ).stdout.trim();
    ok(await cli(['vm', 'list'], { env: { SENDENSE_API_KEY: operator } }));
    const keys = json<{ id: string; name: string; role: string; revokedAt: string | null }[]>(await cli(['apikey', 'list', '--json']));
    const mine = keys.find((k) => k.name === 'cli e2e revoke me');
    expect(mine).toMatchObject({ role: 'operator', revokedAt: null });
    expect(JSON.stringify(keys)).not.toContain(operator);
    // Only an admin lists keys.
    expect((await cli(['apikey', 'list'], { env: { SENDENSE_API_KEY: operator } })).code).toBe(4);
    expect(ok(await cli(['apikey', 'revoke', mine!.id])).stdout.trim()).toBe(`revoked ${mine!.id}`);
    const after = ok(await cli(['apikey', 'list'], { env: { COLUMNS: '80' } })).stdout;
    expect(after.split('\n').find((l) => l.includes(mine!.id))).toMatch(/revoked/);
    const refused = await cli(['vm', 'list'], { env: { SENDENSE_API_KEY: operator } });
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/next:/);
    expect((await cli(['apikey', 'revoke', 'no-such-key'])).code).toBe(3);
  }, 120_000);

  it('backup start --wait in a pseudo-terminal shows a moving bar; piped, plain lines; --json parses', async () => {
    const cmd = `node ${CLI} backup start --vm ${BAR_VM} --type full --wait`;
    const tty = await run('script', ['-q', '-e', '-c', cmd, '/dev/null'], {
      env: { ...env, COLUMNS: '100', LINES: '40' },
      okExitCodes: [0, 1, 2, 3, 4, 5, 6],
      timeoutMs: 300_000,
    });
    expect({ code: tty.exitCode, out: tty.exitCode ? tty.stdout.slice(-2000) : '' }).toEqual({ code: 0, out: '' });
    // The bar: redrawn with cursor control, and its percentage moves.
    // eslint-disable-next-line no-control-regex
    expect(tty.stdout).toMatch(/\u001b\[/);
    // cli-progress pads the percentage ("  7%", " 45%", "100%").
    const pcts = new Set([...tty.stdout.matchAll(/disk 0 \[[█░]+\]\s+(\d+)%/g)].map((m) => Number(m[1])));
    expect({ distinct: pcts.size >= 2, sample: pcts.size >= 2 ? '' : JSON.stringify(tty.stdout.slice(-3000)) }).toEqual({ distinct: true, sample: '' });

    const piped = ok(await cli(['backup', 'start', '--vm', BAR_VM, '--type', 'full', '--wait']));
    expect(piped.stdout + piped.stderr).not.toMatch(CONTROL);
    expect(piped.stderr).toMatch(/job [0-9a-f-]{36}: (running|completed)/);

    const doc = json<{ status: string; run_id: string }>(await cli(['backup', 'start', '--vm', BAR_VM, '--type', 'incremental', '--wait', '--json']));
    expect(doc.status).toBe('completed');
    const watch = ok(await cli(['job', 'watch', doc.run_id, '--json']));
    const lines = watch.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; status: string });
    expect(lines.at(-1)).toMatchObject({ event: 'end', status: 'completed' });
    const show = ok(await cli(['job', 'show', doc.run_id]));
    expect(show.stdout).toMatch(/status:\s+completed/);
  }, 600_000);
});
