import { Command, InvalidArgumentError } from 'commander';
import { unwrap } from '@sendense/api-client';
import { Ctx, type Io } from '../context';
import { CliError, EXIT } from '../errors';
import type { Mount } from '../extract';
import { details, humanBytes, localTime, table } from '../format';
import { TERMINAL, watchJob } from '../progress';

/** Shared parts of the command modules: the gateway's answers as the CLI reads them, option parsers, renderers. */

// ---- narrow local types of what the gateway answers (its Swagger schemas are still untyped) ----

export interface Backup {
  id: string;
  run_id: string | null;
  vm_context_id: string;
  vm_name: string;
  disk_id: number;
  backup_type: string;
  requested_type?: string | null;
  fallback_reason?: string | null;
  status: string;
  repository_id: string | null;
  parent_backup_id: string | null;
  bytes_transferred: number;
  total_bytes: number;
  virtual_size_bytes: number | null;
  allocated_bytes: number | null;
  checksum?: string | null;
  error_message: string | null;
  verified_at?: string | null;
  verify_status?: string | null;
  created_at: string;
  started_at?: string | null;
  completed_at: string | null;
  chain?: string[];
  dependents?: string[];
}
export interface Chain {
  vm_context_id: string;
  vm_name: string;
  chains: {
    disk_id: number;
    full_backup_id: string;
    latest_backup_id: string;
    total_backups: number;
    total_size_bytes: number;
    virtual_size_bytes: number;
    restore_points: Backup[];
  }[];
}
export interface JobStatus {
  run_id: string;
  vm_context_id: string;
  vm_name?: string;
  status: string;
  queued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  progress: unknown;
  error: string | null;
  backups: Backup[];
  events: { at: string; level: string; phase: string; message: string }[];
}
export interface Vm {
  context_id: string;
  vm_name: string;
  vcenter_id: string;
  cbt_enabled: boolean;
  disks: { disk_id: number; label: string | null; capacity_bytes: number; last_backup_id: string | null }[];
}
export interface Repo {
  id: string;
  name: string;
  type: string;
  enabled: boolean;
  storage_node: string;
  total_size_bytes: number;
  available_size_bytes: number;
  used_by_backups_bytes?: number;
  measured?: string;
  config?: unknown;
}
export interface VCenter {
  id: string;
  name: string;
  url: string;
  username: string;
  insecure: boolean;
  created_at: string;
}
export interface Policy {
  id: string;
  repository_id: string;
  vm_context_id: string | null;
  keep_last: number;
  daily: number;
  weekly: number;
  monthly: number;
}

// ---- helpers ----

export const int =
  (what: string, min = 0) =>
  (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`${what} must be a whole number${min ? ` of at least ${min}` : ''}`);
    return Number(v);
  };
export const oneOf =
  <T extends string>(values: readonly T[]) =>
  (v: string) => {
    if (!(values as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${values.join(', ')}`);
    return v as T;
  };

/** --vm takes a name or a context id (ctx-...). */
export function vmSelector(vm: string): { vm_name?: string; vm_context_id?: string } {
  return vm.startsWith('ctx-') ? { vm_context_id: vm } : { vm_name: vm };
}

export const example = (...lines: string[]) => `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

export const TYPES = ['full', 'incremental', 'differential'] as const;
export const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
export type BackupStatus = (typeof STATUSES)[number];

export function backupRows(items: Backup[]): string[][] {
  return items.map((b) => [
    b.id,
    String(b.disk_id),
    b.backup_type,
    b.status,
    humanBytes(b.allocated_bytes ?? b.bytes_transferred),
    localTime(b.completed_at ?? b.created_at),
  ]);
}
export const BACKUP_COLS = [
  { header: 'ID', min: 36 },
  { header: 'DISK', right: true },
  { header: 'TYPE' },
  { header: 'STATUS' },
  { header: 'SIZE', right: true, min: 8 },
  { header: 'TIME', min: 19 },
];

export function jobFailure(doc: { run_id: string; status: string; error: string | null }): CliError {
  return new CliError(
    `job ${doc.run_id} ${doc.status}${doc.error ? `: ${doc.error}` : ''}`,
    EXIT.jobFailed,
    `see its events with: sendense-ctl job show ${doc.run_id}`,
  );
}

/**
 * sendense-ctl: the operator's command line. Everything goes through the
 * REST API (libs/api-client) except `apikey create`, which bootstraps the
 * first admin key in the database.

/** Wraps a command's action: a Ctx for the command; errors propagate to runCli. */
export type Act = <A extends unknown[]>(fn: (ctx: Ctx, ...args: A) => Promise<void>) => (...args: unknown[]) => Promise<void>;

export function actions(io: Io): Act {
  return <A extends unknown[]>(fn: (ctx: Ctx, ...args: A) => Promise<void>) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      await fn(Ctx.of(cmd, io), ...(args.slice(0, -1) as A));
    };
}

/** After `--wait`: follow the job to its end, print it, exit 6 unless it completed. */
export async function followToEnd(ctx: Ctx, runId: string): Promise<void> {
  const end = await watchJob(ctx, ctx.raw, runId);
  const doc = (await unwrap(ctx.api.GET('/api/v1/jobs/{runId}', { params: { path: { runId } } }))) as unknown as JobStatus;
  ctx.result(doc, () => renderJob(doc, ctx.width));
  if (end.status !== 'completed' || doc.status !== 'completed') throw jobFailure({ ...doc, status: doc.status === 'completed' ? end.status : doc.status });
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function renderPartitions(m: Mount, width: number): string {
  return table(
    [{ header: 'PARTITION' }, { header: 'FS' }, { header: 'SIZE', right: true, min: 8 }, { header: 'STATE' }],
    m.partitions.map((p) => [p.name, p.fsType ?? '-', humanBytes(p.sizeBytes), p.mounted ? 'mounted' : `not mounted${p.error ? `: ${p.error}` : ''}`]),
    width,
  );
}

export function renderJob(doc: JobStatus, width: number, withEvents = false): string {
  const lines = [
    details([
      ['job', doc.run_id],
      ['vm', doc.vm_name ?? doc.vm_context_id],
      ['status', doc.status + (doc.error ? `: ${doc.error}` : '')],
      ['queued', localTime(doc.queued_at)],
      ['started', localTime(doc.started_at)],
      ['finished', localTime(doc.finished_at)],
    ]),
  ];
  if (doc.backups.length) lines.push('', table(BACKUP_COLS, backupRows(doc.backups), width));
  if (withEvents && doc.events.length) {
    lines.push('', ...doc.events.map((e) => `${localTime(e.at)}  ${e.level.padEnd(5)} ${e.phase ? `[${e.phase}] ` : ''}${e.message}`));
  }
  if (!TERMINAL.includes(doc.status)) lines.push('', `follow it: sendense-ctl job watch ${doc.run_id}`);
  return lines.join('\n');
}
