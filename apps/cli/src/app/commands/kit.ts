import { Command, InvalidArgumentError } from 'commander';
import { unwrap, type Schemas } from '@sendense/api-client';
import { Ctx, type Io } from '../context';
import { CliError, EXIT } from '../errors';
import type { Mount } from '../extract';
import { details, humanBytes, localTime, table } from '../format';
import { TERMINAL, watchJob } from '../progress';

/** Shared parts of the command modules: the gateway's answers as the CLI reads them, option parsers, renderers. */

// ---- the gateway's answers as the CLI reads them: its OpenAPI schemas (libs/api-client, npm run api:generate) ----

export type Backup = Schemas['BackupDto'];
export type JobStatus = Schemas['JobStatusDto'];

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
  const doc = await unwrap(ctx.api.GET('/api/v1/jobs/{runId}', { params: { path: { runId } } }));
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
      ['vm', doc.vm_context_id],
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
