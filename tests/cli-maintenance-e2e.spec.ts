import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, waitFor } from '@sendense/process';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { ROOT, startSystem, type System } from './support/system';

/**
 * sendense-ctl's maintenance verbs end to end: the built CLI against the real
 * services and the VMware stand-in. job list (filters, --json), backup
 * verify, backup consolidate --keep, retention set/show/apply (--dry-run and
 * for real), job cancel of a running backup, repo space.
 */

const MiB = 1024 * 1024;
const VM = 'maint-vm';
const SLOW_VM = 'maint-slow-vm';
const CLI = join(ROOT, 'dist/apps/cli/main.js');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}
interface Point {
  id: string;
  backup_type: string;
}
interface ChainDoc {
  chains: { disk_id: number; total_backups: number; restore_points: Point[] }[];
}
interface JobItem {
  run_id: string;
  vm_name: string | null;
  vm_context_id: string;
  status: string;
  requested_type: string;
}
interface JobList {
  total: number;
  items: JobItem[];
}
interface Verification {
  ok: boolean;
  checkClean: boolean;
  checksumMatches: boolean;
  restorePointId: string;
}

describe('sendense-ctl maintenance end to end', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let deviceKey: number;
  let ctxId = '';
  const runs: string[] = [];

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
  const chain = async () => json<ChainDoc>(await cli(['backup', 'chain', '--vm', VM, '--json'])).chains[0]!;
  const ids = async () => (await chain()).restore_points.map((p) => p.id);
  /** The guest changes a few MiB between backups, at a different place each time. */
  const change = async (n: number) => standIn.harness!.write(VM, deviceKey, (4 + n * 6) * MiB, Buffer.alloc(2 * MiB, 0x41 + n));
  const backup = async (type: 'full' | 'incremental') => {
    const doc = json<{ status: string; run_id: string }>(await cli(['backup', 'start', '--vm', VM, '--type', type, '--wait', '--json']));
    expect(doc.status).toBe('completed');
    runs.push(doc.run_id);
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-cli-maint-e2e-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [
        { name: VM, disks: [{ sizeMiB: 48, content: { type: 'random', percent: 60, seed: 11 } }] },
        // Big enough that a cancel lands in the middle of the copy.
        { name: SLOW_VM, disks: [{ sizeMiB: 1024, content: { type: 'random', percent: 100, seed: 12 } }] },
      ],
    });
    sys = await startSystem();
    env = { ...sys.env, SENDENSE_API_URL: sys.api, SENDENSE_API_KEY: sys.adminKey, XDG_CONFIG_HOME: join(work, 'config'), HOME: work };
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
    json(await cli(['vcenter', 'import', vc.id, '--vm', VM, SLOW_VM, '--json']));
    json(await cli(['repo', 'add', '--name', 'local', '--path', sys.repoDir, '--json']));
    const vms = json<{ vm_name: string; context_id: string }[]>(await cli(['vm', 'list', '--json']));
    ctxId = vms.find((v) => v.vm_name === VM)!.context_id;
    expect(ctxId).toMatch(/^ctx-/);
    const raw = await sys.call<{ vm_name: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
    deviceKey = raw.body.find((v) => v.vm_name === VM)!.disks[0]!.device_key;
    // A chain of four: full and three incrementals, each over a change.
    await backup('full');
    for (let n = 1; n <= 3; n++) {
      await change(n);
      await backup('incremental');
    }
  }, 900_000);

  afterAll(async () => {
    await sys?.stop();
    await standIn?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('job list: newest first, --state and --vm filter, --json parses, the table fits 80 columns', async () => {
    const all = json<JobList>(await cli(['job', 'list', '--json']));
    expect(all.total).toBe(4);
    expect(all.items.map((j) => j.run_id)).toEqual([...runs].reverse());
    expect(all.items.map((j) => j.requested_type)).toEqual(['incremental', 'incremental', 'incremental', 'full']);
    const completed = json<JobList>(await cli(['job', 'list', '--state', 'completed', '--vm', VM, '--json']));
    expect(completed.items.map((j) => j.run_id).sort()).toEqual([...runs].sort());
    expect(completed.items.every((j) => j.status === 'completed' && j.vm_name === VM)).toBe(true);
    expect(json<JobList>(await cli(['job', 'list', '--state', 'failed', '--json']))).toMatchObject({ total: 0, items: [] });
    expect(json<JobList>(await cli(['job', 'list', '--vm', SLOW_VM, '--json']))).toMatchObject({ total: 0, items: [] });
    // By context id as well as by name.
    expect(json<JobList>(await cli(['job', 'list', '--vm', ctxId, '--json'])).total).toBe(4);
    const page = json<JobList>(await cli(['job', 'list', '--limit', '2', '--offset', '1', '--json']));
    expect(page.items.map((j) => j.run_id)).toEqual([...runs].reverse().slice(1, 3));
    const table = ok(await cli(['job', 'list', '--limit', '2'], { env: { COLUMNS: '80' } }));
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^RUN\s+VM\s+STATUS\s+TYPE\s+QUEUED/);
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(table.stdout).toContain(runs[3]!);
    expect(table.stdout).toMatch(/more with --offset 2/);
    const bad = await cli(['job', 'list', '--state', 'sleeping']);
    expect(bad.code).toBe(2);
  }, 120_000);

  it('backup verify: every restore point checks clean and matches its checksum; an unknown id is exit 3', async () => {
    for (const id of await ids()) {
      const v = json<Verification>(await cli(['backup', 'verify', id, '--json']));
      expect(v).toMatchObject({ ok: true, checkClean: true, checksumMatches: true, restorePointId: id });
      expect(ok(await cli(['backup', 'verify', id])).stdout.trim()).toBe(`${id}: ok`);
    }
    const missing = await cli(['backup', 'verify', 'no-such-backup']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/no-such-backup[\s\S]*next:/);
  }, 240_000);

  it('backup consolidate --keep 2: the chain shrinks to three and every remaining point still reads back', async () => {
    const before = await ids();
    expect(before).toHaveLength(4);
    const nothing = json<{ merged: boolean }>(await cli(['backup', 'consolidate', '--vm', VM, '--disk', '0', '--keep', '4', '--json']));
    expect(nothing.merged).toBe(false);
    expect(await ids()).toEqual(before);
    const r = json<{ survivorId: string; removedIds: string[] }>(await cli(['backup', 'consolidate', '--vm', VM, '--disk', '0', '--keep', '2', '--json']));
    const after = await ids();
    expect(after).toHaveLength(3);
    // The two newest are untouched; the first point now holds what the second held.
    expect(after.slice(1)).toEqual(before.slice(2));
    expect(r.removedIds).toHaveLength(1);
    expect(after[0]).toBe(r.survivorId);
    expect((await chain()).restore_points[0]!.backup_type).toBe('full');
    for (const id of after) expect(json<Verification>(await cli(['backup', 'verify', id, '--json'])).ok).toBe(true);
    const bad = await cli(['backup', 'consolidate', '--vm', VM, '--disk', '7', '--keep', '1']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/next:/);
  }, 300_000);

  it('retention set, show, apply --dry-run (nothing changes), apply (the chain keeps the last 2, they still read back)', async () => {
    const p = json<{ id: string; keep_last: number; vm_context_id: string | null }>(
      await cli(['retention', 'set', '--repository', 'local', '--vm', ctxId, '--keep-last', '2', '--json']),
    );
    expect(p).toMatchObject({ keep_last: 2, vm_context_id: ctxId });
    const shown = json<{ id: string; keep_last: number }[]>(await cli(['retention', 'show', '--json']));
    expect(shown).toEqual([expect.objectContaining({ id: p.id, keep_last: 2 })]);
    const table = ok(await cli(['retention', 'show'], { env: { COLUMNS: '80' } })).stdout;
    expect(table).toMatch(new RegExp(`^local\\s+${ctxId}\\s+2\\s+0\\s+0\\s+0$`, 'm'));
    expect(table.split('\n').every((l) => l.length <= 80)).toBe(true);

    const before = await ids();
    expect(before).toHaveLength(3);
    const dry = json<{ dryRun: boolean; keep: { id: string }[]; delete: string[]; merge: { removedIds: string[] }[]; errors: unknown[] }>(
      await cli(['retention', 'apply', '--repository', 'local', '--vm', ctxId, '--dry-run', '--json']),
    );
    expect(dry.dryRun).toBe(true);
    expect(dry.keep.map((k) => k.id).sort()).toEqual(before.slice(1).sort());
    expect([...dry.delete, ...dry.merge.flatMap((m) => m.removedIds)]).toEqual([before[0]]);
    expect(dry.errors).toEqual([]);
    expect(await ids()).toEqual(before);
    expect(ok(await cli(['retention', 'apply', '--repository', 'local', '--vm', ctxId, '--dry-run'])).stdout).toMatch(/would keep 2/);

    const done = json<{ dryRun: boolean; errors: unknown[] }>(await cli(['retention', 'apply', '--repository', 'local', '--vm', ctxId, '--json']));
    expect(done).toMatchObject({ dryRun: false, errors: [] });
    const after = await ids();
    expect(after).toHaveLength(2);
    expect((await chain()).restore_points[0]!.backup_type).toBe('full');
    for (const id of after) expect(json<Verification>(await cli(['backup', 'verify', id, '--json'])).ok).toBe(true);
    // Applying again has nothing left to do.
    expect(ok(await cli(['retention', 'apply', '--repository', 'local', '--vm', ctxId])).stdout).toMatch(/kept 2, deleted 0, merged 0/);
  }, 300_000);

  it('job cancel of a running backup: the job ends cancelled, nothing is left behind', async () => {
    const started = json<{ run_id: string; vm_context_id: string }>(await cli(['backup', 'start', '--vm', SLOW_VM, '--type', 'full', '--json']));
    const runId = started.run_id;
    // Polled straight from the gateway (a CLI run per poll is slower than the copy).
    await waitFor(
      async () => {
        const s = (await sys.call<{ status: string; progress: { phase: string; bytesDone: number } | null }>('GET', `/api/v1/jobs/${runId}`)).body;
        return s.status !== 'queued' && s.status !== 'running' ? true : s.progress?.phase === 'copying' && s.progress.bytesDone > 0;
      },
      { timeoutMs: 120_000, intervalMs: 100, message: 'the copy to start' },
    );
    const running = json<JobList>(await cli(['job', 'list', '--state', 'running', '--json']));
    expect(running.items.map((j) => j.run_id)).toEqual([runId]);
    const c = json<{ run_id: string; status: string }>(await cli(['job', 'cancel', runId, '--json']));
    expect(c).toEqual({ run_id: runId, status: 'cancelling' });
    const watched = await cli(['job', 'watch', runId]);
    expect(watched.code).toBe(6);
    expect(watched.stderr).toMatch(/cancelled/);
    const doc = json<{ status: string; backups: { id: string; status: string }[] }>(await cli(['job', 'show', runId, '--json']));
    expect(doc.status).toBe('cancelled');
    expect(doc.backups.length).toBe(1);
    expect(doc.backups.every((b) => b.status === 'cancelled')).toBe(true);
    expect(json<JobList>(await cli(['job', 'list', '--state', 'cancelled', '--json'])).items.map((j) => j.run_id)).toEqual([runId]);
    expect(json<JobList>(await cli(['job', 'list', '--state', 'running', '--json'])).total).toBe(0);
    // No NBD export, no snapshot on the VM, no image or sidecar in the repository.
    expect(await sys.db.prisma.nbdExport.count({ where: { backupJobId: { in: doc.backups.map((b) => b.id) } } })).toBe(0);
    expect((await standIn.harness!.vm(SLOW_VM)).disks.flatMap((d) => d.snapshots)).toEqual([]);
    const files = await readdir(join(sys.repoDir, started.vm_context_id), { recursive: true }).catch(() => [] as string[]);
    expect(files.filter((f) => /\.(qcow2|json)$/.test(String(f)))).toEqual([]);
    // Cancelling it again: it has ended.
    const again = await cli(['job', 'cancel', runId]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/next:/);
  }, 300_000);

  it('repo space: total, free and what the backups use', async () => {
    const s = json<{ name: string; total_size_bytes: number; available_size_bytes: number; used_by_backups_bytes: number }>(
      await cli(['repo', 'space', 'local', '--json']),
    );
    expect(s.name).toBe('local');
    expect(s.total_size_bytes).toBeGreaterThan(s.available_size_bytes);
    expect(s.available_size_bytes).toBeGreaterThan(0);
    // Two restore points of a 48 MiB disk with ~60% data (the cancelled 1 GiB one left nothing): some MiB, less than two full disks.
    expect(s.used_by_backups_bytes).toBeGreaterThan(10 * MiB);
    expect(s.used_by_backups_bytes).toBeLessThan(2 * 48 * MiB);
    const text = ok(await cli(['repo', 'space', 'local'])).stdout;
    expect(text).toMatch(/repository:\s+local/);
    expect(text).toMatch(/used by backups:\s+\d+(\.\d)? MiB/);
    const missing = await cli(['repo', 'space', 'nope']);
    expect(missing.code).toBe(3);
  }, 60_000);
});
