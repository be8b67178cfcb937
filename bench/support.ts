/**
 * What the benches share: medians, flags, CPU accounting from /proc, and
 * the whole product (built apps + VMware stand-in) set up for backups.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findProcesses, run } from '@sendense/process';
import { startStandIn, type StandIn, type StandInOptions, type StandInVmConfig } from '@sendense/vsphere';
import { startSystem, waitForJob, type System } from '../tests/support/system';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export const round = (x: number, digits = 1) => Number(x.toFixed(digits));

/** `--name=value` or `--name value`; undefined when absent. */
export function flag(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === `--${name}`) return args[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}
export const numFlag = (args: readonly string[], name: string, dflt: number) => Number(flag(args, name) ?? dflt);
export const listFlag = (args: readonly string[], name: string, dflt: number[]) => flag(args, name)?.split(',').map(Number) ?? dflt;

export const logger = (bench: string) => (s: string) => process.stderr.write(`[bench ${bench}] ${s}\n`);

/** One JSON line on stdout (the only thing a bench prints there). */
export function emit(bench: string, obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ bench, ...obj })}\n`);
}

// ---------------------------------------------------------------- CPU

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every Linux build here). */
const TICKS = 100;

interface Ticks {
  utime: number;
  stime: number;
}

function readTicks(pid: number | 'self', children = false): Ticks | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // Fields 14-17 of stat (utime, stime, cutime, cstime) are 11-14 after "state".
    const i = children ? 13 : 11;
    return { utime: Number(f[i]), stime: Number(f[i + 1]) };
  } catch {
    return null;
  }
}

export interface CpuUse {
  user_s: number;
  system_s: number;
}

/**
 * CPU time used by groups of processes between start() and stop(), from
 * /proc/<pid>/stat. Groups are re-resolved every interval so processes
 * started during the measurement (one qemu-nbd per export) are counted;
 * a process first seen during the window counts from zero. A process that
 * exits between samples loses at most one interval of its time.
 */
export class CpuMeter {
  private readonly first = new Map<string, Ticks>();
  private readonly last = new Map<string, Ticks>();
  private readonly groupOf = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();
  private startedAt = 0;
  private selfChildren: Ticks | null = null;

  constructor(
    private readonly groups: Record<string, () => Promise<number[]> | number[]>,
    private readonly intervalMs = 500,
  ) {}

  private async sample(initial: boolean): Promise<void> {
    for (const [group, pids] of Object.entries(this.groups)) {
      for (const pid of await pids()) {
        const t = readTicks(pid);
        if (!t) continue;
        const key = `${pid}`;
        if (!this.first.has(key)) {
          this.first.set(key, initial ? t : { utime: 0, stime: 0 });
          this.groupOf.set(key, group);
        }
        this.last.set(key, t);
      }
    }
  }

  async start(): Promise<void> {
    this.first.clear();
    this.last.clear();
    this.groupOf.clear();
    this.startedAt = Date.now();
    this.selfChildren = readTicks('self', true);
    await this.sample(true);
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample(false)).catch(() => undefined);
    }, this.intervalMs);
  }

  /** Per group, plus `children-of-bench` (reference tools run by the bench, e.g. nbdcopy) and `wall_s`. */
  async stop(): Promise<{ groups: Record<string, CpuUse>; wall_s: number }> {
    if (this.timer) clearInterval(this.timer);
    await this.sampling;
    await this.sample(false);
    const out: Record<string, CpuUse> = {};
    for (const group of Object.keys(this.groups)) out[group] = { user_s: 0, system_s: 0 };
    for (const [key, a] of this.first) {
      const b = this.last.get(key) ?? a;
      const g = out[this.groupOf.get(key) as string] as CpuUse;
      g.user_s += (b.utime - a.utime) / TICKS;
      g.system_s += (b.stime - a.stime) / TICKS;
    }
    const c = readTicks('self', true);
    if (c && this.selfChildren) {
      out['children-of-bench'] = { user_s: (c.utime - this.selfChildren.utime) / TICKS, system_s: (c.stime - this.selfChildren.stime) / TICKS };
    }
    return { groups: out, wall_s: (Date.now() - this.startedAt) / 1000 };
  }
}

/** CPU seconds per GiB moved, per group, rounded; drops groups that used nothing. */
export function cpuPerGiB(groups: Record<string, CpuUse>, bytes: number): Record<string, { user: number; system: number }> {
  const out: Record<string, { user: number; system: number }> = {};
  const gib = bytes / GiB;
  let tu = 0;
  let ts = 0;
  for (const [g, c] of Object.entries(groups)) {
    if (c.user_s + c.system_s === 0) continue;
    out[g] = { user: round(c.user_s / gib, 2), system: round(c.system_s / gib, 2) };
    tu += c.user_s;
    ts += c.system_s;
  }
  out['total'] = { user: round(tu / gib, 2), system: round(ts / gib, 2) };
  return out;
}

/** Median per group and field over several runs. */
export function medianCpu(runs: Array<Record<string, { user: number; system: number }>>): Record<string, { user: number; system: number }> {
  const keys = new Set(runs.flatMap((r) => Object.keys(r)));
  const out: Record<string, { user: number; system: number }> = {};
  for (const k of keys) {
    out[k] = {
      user: round(median(runs.map((r) => r[k]?.user ?? 0)), 2),
      system: round(median(runs.map((r) => r[k]?.system ?? 0)), 2),
    };
  }
  return out;
}

/** Process groups of the product and its peers: services by pid, servers they start by argv. */
export function productCpuGroups(sys: System, standIn: StandIn): Record<string, () => Promise<number[]> | number[]> {
  const daemon = (app: string) => () => {
    const pid = sys.daemons.get(app)?.pid;
    return pid ? [pid] : [];
  };
  let cache: { at: number; procs: { pid: number; argv: string[] }[] } = { at: 0, procs: [] };
  const procs = async () => {
    if (Date.now() - cache.at > 900)
      cache = { at: Date.now(), procs: await findProcesses((argv) => argv.some((a) => a.includes(sys.dir) || a.includes('vcsim'))) };
    return cache.procs;
  };
  const byArgv = (test: (argv: string[]) => boolean) => async () => (await procs()).filter((p) => test(p.argv)).map((p) => p.pid);
  return {
    'api-gateway': daemon('api-gateway'),
    'backup-worker': daemon('backup-worker'),
    'capture-agent': daemon('capture-agent'),
    'nbd-exporter': daemon('nbd-exporter'),
    'qemu-nbd (target)': byArgv((a) => (a[0] ?? '').endsWith('qemu-nbd') && a.some((x) => x.includes(sys.dir))),
    'qemu-img (commit)': byArgv((a) => (a[0] ?? '').endsWith('qemu-img') && a.some((x) => x.includes(sys.dir))),
    'stand-in (source)': async () => [standIn.pid, ...(await byArgv((a) => (a[0] ?? '').endsWith('qemu-storage-daemon'))())],
  };
}

// ---------------------------------------------------------------- the product

export interface Bench {
  sys: System;
  standIn: StandIn;
  work: string;
  stop(): Promise<void>;
}

/** Stand-in with these VMs, the services, a vCenter, the VMs imported, a repository named `bench`. */
export async function startBenchSystem(name: string, vms: StandInVmConfig[], opts: Partial<StandInOptions> = {}): Promise<Bench> {
  const work = await mkdtemp(join(tmpdir(), `sendense-bench-${name}-`));
  const standIn = await startStandIn({ stateDir: join(work, 'vcsim'), vms, startTimeoutMs: 900_000, ...opts });
  let sys: System;
  try {
    sys = await startSystem();
  } catch (err) {
    await standIn.stop();
    await rm(work, { recursive: true, force: true });
    throw err;
  }
  const stop = async () => {
    await sys.stop();
    await standIn.stop();
    await rm(work, { recursive: true, force: true });
  };
  try {
    const vc = await sys.call<{ id: string }>('POST', '/api/v1/vcenters', {
      name: 'bench',
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      insecure: true,
      disk_reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl },
    });
    if (vc.status !== 201) throw new Error(`POST /vcenters: ${vc.status} ${JSON.stringify(vc.body)}`);
    const imp = await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: vms.map((v) => v.name) });
    if (imp.status !== 200) throw new Error(`import: ${imp.status} ${JSON.stringify(imp.body)}`);
    const repo = await sys.call('POST', '/api/v1/repositories', { name: 'bench', type: 'local', path: sys.repoDir });
    if (repo.status !== 201) throw new Error(`POST /repositories: ${repo.status} ${JSON.stringify(repo.body)}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { sys, standIn, work, stop };
}

export interface BackupRow {
  id: string;
  disk_id: number;
  backup_type: string;
  bytes_transferred: number;
  allocated_bytes: number;
  repository_path: string;
  completed_at?: string | null;
}

export interface JobDoc {
  status: string;
  error: string | null;
  started_at?: string | null;
  finished_at: string | null;
  backups: BackupRow[];
  events: { at: string; phase: string; message: string }[];
}

/** Start a backup through the API; returns the run id and when the call was made. */
export async function startBackup(sys: System, vm: string, type: 'full' | 'incremental'): Promise<{ runId: string; t0: number }> {
  const t0 = Date.now();
  const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: vm, backup_type: type, repository: 'bench' });
  if (start.status !== 202) throw new Error(`start ${type} of ${vm}: ${start.status} ${JSON.stringify(start.body)}`);
  return { runId: start.body.run_id, t0 };
}

/** Wait for a run; seconds from the API call to the queue's completion time. */
export async function finishBackup(sys: System, b: { runId: string; t0: number }, vm = ''): Promise<{ seconds: number; doc: JobDoc; finishedAt: number }> {
  const doc = await waitForJob<JobDoc>(sys, b.runId, 1_800_000, 500);
  if (doc.status !== 'completed') throw new Error(`backup ${vm} ${b.runId} ${doc.status}: ${doc.error}`);
  // The end is when the queue marked the job completed, not when a poll
  // noticed. A job the queue no longer holds (its record replaced or
  // trimmed) has no finished_at: then the last restore point's commit time.
  if (!doc.finished_at) {
    const last = Math.max(...doc.backups.map((r) => Date.parse(r.completed_at ?? '')).filter((t) => !Number.isNaN(t)));
    if (!Number.isFinite(last)) throw new Error(`job ${b.runId} has no finished_at and no committed restore point`);
    process.stderr.write(`[bench] job ${b.runId} has no finished_at in the queue; using its last commit time\n`);
    doc.finished_at = new Date(last).toISOString();
  }
  const finishedAt = Date.parse(doc.finished_at);
  return { seconds: (finishedAt - b.t0) / 1000, doc, finishedAt };
}

export async function timedBackup(sys: System, vm: string, type: 'full' | 'incremental') {
  return finishBackup(sys, await startBackup(sys, vm, type), vm);
}

/**
 * Where a run's time went, from its job events (the worker logs each phase):
 * queue (API call to the worker's first event), prepare (snapshot and changed
 * areas), setup (restore points and writable exports), copy, flush (exports
 * removed: qemu-nbd writes back and exits), commit (fsync, check, digest,
 * sidecar, rows), finish (to the queue's completion).
 */
export function phaseBreakdown(doc: JobDoc, t0: number): Record<string, number> {
  const at = (pred: (e: JobDoc['events'][number]) => boolean) => {
    const e = doc.events.find(pred);
    return e ? Date.parse(e.at) : NaN;
  };
  const first = doc.events.length ? Date.parse((doc.events[0] as { at: string }).at) : NaN;
  const snap = at((e) => e.phase === 'snapshot' && e.message.startsWith('snapshot '));
  const copyStart = at((e) => e.phase === 'copying' && e.message.startsWith('copying '));
  const copied = at((e) => e.phase === 'copying' && e.message.startsWith('copied '));
  const flushed = at((e) => e.phase === 'committing' && e.message.startsWith('targets flushed'));
  const done = at((e) => e.phase === 'done');
  const end = doc.finished_at ? Date.parse(doc.finished_at) : NaN;
  const s = (a: number, b: number) => round((b - a) / 1000, 2);
  return {
    queue_s: s(t0, first),
    prepare_s: s(first, snap),
    setup_s: s(snap, copyStart),
    copy_s: s(copyStart, copied),
    flush_s: s(copied, flushed),
    commit_s: s(Number.isNaN(flushed) ? copied : flushed, done),
    finish_s: s(done, end),
  };
}

/** Median of each phase over several runs. */
export function medianPhases(xs: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(xs[0] ?? {})) out[k] = round(median(xs.map((x) => x[k] ?? NaN)), 2);
  return out;
}

export async function deleteBackup(sys: System, id: string): Promise<void> {
  const del = await sys.call('DELETE', `/api/v1/backup/${id}`);
  if (del.status >= 300) throw new Error(`deleting restore point ${id}: ${del.status} ${JSON.stringify(del.body)}`);
}

/** Write back what the last run left and let the disk settle, so it does not land on the next run. */
export async function settle(ms = 2000): Promise<void> {
  await run('sync', []);
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * Bytes a reference command writes into a pipe, drained by `wc -c` (GNU tar
 * skips reading file data when its output is /dev/null, and the process
 * runner keeps what it reads). The command's arguments are positional
 * parameters of a fixed script, never part of it.
 */
export async function piped(argv: string[]): Promise<number> {
  const r = await run('sh', ['-c', '"$@" | wc -c', 'sh', ...argv], { timeoutMs: 600_000 });
  return Number(r.stdout.trim());
}

/** Peak RSS (MiB) of pids, sampled until stop(). */
export class RssMeter {
  private peak = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly pids: () => number[],
    private readonly intervalMs = 100,
  ) {}
  start(): void {
    this.peak.clear();
    this.timer = setInterval(() => {
      for (const pid of this.pids()) {
        try {
          const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
          if (m) this.peak.set(pid, Math.max(this.peak.get(pid) ?? 0, Number(m[1]) / 1024));
        } catch {
          // gone
        }
      }
    }, this.intervalMs);
  }
  stop(): Map<number, number> {
    if (this.timer) clearInterval(this.timer);
    return new Map(this.peak);
  }
}
