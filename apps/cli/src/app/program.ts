import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadEnv, commonEnv } from '@sendense/config';
import { API_ROLES, ApiKeyRepository, createPrismaClient, type ApiRole } from '@sendense/db';
import { ApiError, unwrap } from '@sendense/api-client';
import { bashCompletion, zshCompletion } from './completion';
import { Ctx, processIo, type Io } from './context';
import { CliError, EXIT, EXIT_HELP, toCliError } from './errors';
import { downloadImage, type ImageFormat } from './disk-restore';
import { downloadDir, downloadFile, fileDestination, guestPath, listAll, listMounts, locate, mountBackup, type Entry, type Mount } from './extract';
import { details, humanBytes, localTime, modeString, octalMode, parseMode, table } from './format';
import { TERMINAL, progressLine, watchJob, type ProgressEvent } from './progress';
import { configPath, validateApiUrl, writeConfigFile } from './settings';
import { addPolicyCommands } from './policy-commands';

// ---- narrow local types of what the gateway answers (its Swagger schemas are still untyped) ----

interface Backup {
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
interface Chain {
  vm_context_id: string;
  vm_name: string;
  chains: { disk_id: number; full_backup_id: string; latest_backup_id: string; total_backups: number; total_size_bytes: number; virtual_size_bytes: number; restore_points: Backup[] }[];
}
interface JobStatus {
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
interface Vm {
  context_id: string;
  vm_name: string;
  vcenter_id: string;
  cbt_enabled: boolean;
  disks: { disk_id: number; label: string | null; capacity_bytes: number; last_backup_id: string | null }[];
}
interface Repo {
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
interface VCenter {
  id: string;
  name: string;
  url: string;
  username: string;
  insecure: boolean;
  created_at: string;
}
interface Policy {
  id: string;
  repository_id: string;
  vm_context_id: string | null;
  keep_last: number;
  daily: number;
  weekly: number;
  monthly: number;
}

// ---- helpers ----

const int = (what: string, min = 0) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`${what} must be a whole number${min ? ` of at least ${min}` : ''}`);
  return Number(v);
};
const oneOf = <T extends string>(values: readonly T[]) => (v: string) => {
  if (!(values as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${values.join(', ')}`);
  return v as T;
};

/** --vm takes a name or a context id (ctx-...). */
function vmSelector(vm: string): { vm_name?: string; vm_context_id?: string } {
  return vm.startsWith('ctx-') ? { vm_context_id: vm } : { vm_name: vm };
}

const example = (...lines: string[]) => `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

const TYPES = ['full', 'incremental', 'differential'] as const;
const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
type BackupStatus = (typeof STATUSES)[number];

function backupRows(items: Backup[]): string[][] {
  return items.map((b) => [b.id, String(b.disk_id), b.backup_type, b.status, humanBytes(b.allocated_bytes ?? b.bytes_transferred), localTime(b.completed_at ?? b.created_at)]);
}
const BACKUP_COLS = [{ header: 'ID', min: 36 }, { header: 'DISK', right: true }, { header: 'TYPE' }, { header: 'STATUS' }, { header: 'SIZE', right: true, min: 8 }, { header: 'TIME', min: 19 }];

function jobFailure(doc: { run_id: string; status: string; error: string | null }): CliError {
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
 */
export function buildProgram(io: Io = processIo()): Command {
  const program = new Command('sendense-ctl')
    .description('Sendense backup command line: back up VMware VMs, find restore points, pull files out')
    .option('--api-url <url>', 'API gateway (else SENDENSE_API_URL, else the config file, else http://127.0.0.1:8080)')
    .option('--api-key <key>', 'API key (else SENDENSE_API_KEY, else the config file)')
    .option('--json', 'machine-readable output: one JSON document (JSON lines for streams), nothing else on stdout')
    .option('-q, --quiet', 'no progress or notes on stderr')
    .showHelpAfterError('(add --help for usage and examples)')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
    .addHelpText(
      'after',
      `
Settings: flags, then SENDENSE_API_URL / SENDENSE_API_KEY, then ${configPath(io.env).replace(io.env['HOME'] ?? '\0', '~')}
(written by "sendense-ctl login"; refused when others can read it).

${EXIT_HELP}
${example('sendense-ctl login --api-url http://backup01:8080 --api-key sdk_...', 'sendense-ctl backup start --vm web01 --type incremental --wait', 'sendense-ctl backup extract --backup-id ID --file /etc/hosts --output ./hosts')}`,
    );

  /** Wrap an action: a Ctx for the command; errors propagate to main. */
  const act =
    <A extends unknown[]>(fn: (ctx: Ctx, ...args: A) => Promise<void>) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      await fn(Ctx.of(cmd, io), ...(args.slice(0, -1) as A));
    };

  // ---- login ----
  program
    .command('login')
    .description(`store the gateway URL and API key in ${configPath(io.env).replace(io.env['HOME'] ?? '\0', '~')} (mode 0600), after checking them`)
    .option('--no-verify', 'store without checking the key against the gateway')
    .addHelpText('after', example('sendense-ctl login --api-url http://backup01:8080 --api-key sdk_abc_...', 'SENDENSE_API_KEY=sdk_... sendense-ctl login'))
    .action(
      act(async (ctx, o: { verify: boolean }) => {
        const s = ctx.settings;
        if (!s.apiKey) throw new CliError('no API key to store', EXIT.usage, 'give it with --api-key sdk_... (create one: sendense-ctl apikey create --role operator)');
        if (o.verify) {
          // Any authenticated read proves the key; viewers may read VMs.
          await unwrap(ctx.api.GET('/api/v1/vms'));
        }
        const path = configPath(io.env);
        writeConfigFile(path, { api_url: validateApiUrl(s.apiUrl, 'the API URL'), api_key: s.apiKey });
        ctx.result({ config: path, api_url: s.apiUrl, verified: o.verify }, () => `stored ${s.apiUrl} and the key in ${path} (mode 0600)`);
      }),
    );

  program
    .command('config')
    .description('show the connection settings in effect and where each comes from (never the key)')
    .addHelpText('after', example('sendense-ctl config'))
    .action(
      act(async (ctx) => {
        const s = ctx.settings;
        const key = s.apiKey ? `${s.apiKey.slice(0, 12)}…` : null;
        ctx.result({ api_url: s.apiUrl, api_url_from: s.source.apiUrl, api_key: key, api_key_from: s.source.apiKey, config_file: configPath(io.env) }, () =>
          details([
            ['api url', `${s.apiUrl} (${s.source.apiUrl})`],
            ['api key', key ? `${key} (${s.source.apiKey})` : 'none'],
            ['config file', configPath(io.env)],
          ]),
        );
      }),
    );

  program
    .command('health')
    .description('is the gateway up, and the services behind it?')
    .addHelpText('after', example('sendense-ctl health'))
    .action(
      act(async (ctx) => {
        const res = await ctx.raw.request('GET', '/api/v1/health', { allow: [503] });
        const doc = (await res.json()) as { status: string; checks?: Record<string, { status: string; error?: string }> };
        ctx.result(doc, () =>
          [`gateway ${ctx.settings.apiUrl}: ${doc.status}`, ...Object.entries(doc.checks ?? {}).map(([k, v]) => `  ${k.padEnd(16)} ${v.status}${v.error ? `  ${v.error}` : ''}`)].join('\n'),
        );
        if (res.status !== 200) throw new CliError(`the gateway reports ${doc.status}`, EXIT.unreachable, 'see the failing checks above and that service\'s log');
      }),
    );

  // ---- backup ----
  const backup = program.command('backup').description('start, list, inspect, mount and restore from backups');

  backup
    .command('start')
    .description('start a backup of a VM (all its disks)')
    .requiredOption('--vm <name|context-id>', 'the VM')
    .addOption(new Option('--type <type>', 'backup type').choices(TYPES).default('incremental'))
    .option('--repository <name|id>', 'repository (optional when only one exists)')
    .option('--wait', 'follow the job to its end (progress on stderr; exit 6 when it fails)')
    .addHelpText('after', example('sendense-ctl backup start --vm web01 --type full --wait', 'sendense-ctl backup start --vm ctx-web01-1a2b3c4d --type incremental --repository local'))
    .action(
      act(async (ctx, o: { vm: string; type: (typeof TYPES)[number]; repository?: string; wait?: boolean }) => {
        const started = (await unwrap(
          ctx.api.POST('/api/v1/backup/start', { body: { ...vmSelector(o.vm), backup_type: o.type, ...(o.repository ? { repository: o.repository } : {}) } }),
        )) as unknown as { run_id: string; vm_name: string; vm_context_id: string; backup_type: string; repository: string; status: string };
        if (!o.wait) {
          ctx.result(started, () => `${started.run_id}\n`);
          ctx.note(`queued ${started.backup_type} backup of ${started.vm_name} to ${started.repository}; follow it with: sendense-ctl job watch ${started.run_id}`);
          return;
        }
        ctx.note(`started ${started.backup_type} backup of ${started.vm_name} to ${started.repository} (job ${started.run_id})`);
        const end = await watchJob(ctx, ctx.raw, started.run_id);
        const doc = (await unwrap(ctx.api.GET('/api/v1/jobs/{runId}', { params: { path: { runId: started.run_id } } }))) as unknown as JobStatus;
        ctx.result(doc, () => renderJob(doc, ctx.width));
        if (end.status !== 'completed' || doc.status !== 'completed') throw jobFailure({ ...doc, status: doc.status === 'completed' ? end.status : doc.status });
      }),
    );

  backup
    .command('list')
    .description('restore points (one per disk), newest first')
    .option('--vm <name|context-id>', 'only this VM')
    .addOption(new Option('--status <status>', 'only this status').choices(STATUSES))
    .option('--limit <n>', 'at most this many', int('--limit', 1), 50)
    .option('--offset <n>', 'skip this many', int('--offset'), 0)
    .addHelpText('after', example('sendense-ctl backup list --vm web01 --limit 10'))
    .action(
      act(async (ctx, o: { vm?: string; status?: BackupStatus; limit: number; offset: number }) => {
        const res = (await unwrap(
          ctx.api.GET('/api/v1/backup/list', { params: { query: { ...(o.vm ? vmSelector(o.vm) : {}), ...(o.status ? { status: o.status } : {}), limit: o.limit, offset: o.offset } } }),
        )) as unknown as { total: number; items: Backup[] };
        ctx.result(res, () => {
          if (!res.items.length) return o.vm ? `no backups of ${o.vm} yet; start one: sendense-ctl backup start --vm ${o.vm} --type full` : 'no backups yet';
          const t = table(BACKUP_COLS, backupRows(res.items), ctx.width);
          return res.total > o.offset + res.items.length ? `${t}\n(${res.items.length} of ${res.total}; more with --offset ${o.offset + res.items.length})` : t;
        });
      }),
    );

  backup
    .command('show')
    .description('one restore point: sizes, chain, what depends on it')
    .argument('<backup-id>')
    .addHelpText('after', example('sendense-ctl backup show backup-ctx-web01-1a2b-disk0-full-20261201T220000'))
    .action(
      act(async (ctx, id: string) => {
        const b = (await unwrap(ctx.api.GET('/api/v1/backup/{id}', { params: { path: { id } } }))) as unknown as Backup;
        ctx.result(b, () =>
          details([
            ['id', b.id],
            ['vm', `${b.vm_name} (${b.vm_context_id})`],
            ['disk', b.disk_id],
            ['type', b.backup_type + (b.fallback_reason ? ` (asked ${b.requested_type}: ${b.fallback_reason})` : '')],
            ['status', b.status + (b.error_message ? `: ${b.error_message}` : '')],
            ['job', b.run_id],
            ['parent', b.parent_backup_id],
            ['disk size', humanBytes(b.virtual_size_bytes)],
            ['stored', humanBytes(b.allocated_bytes)],
            ['transferred', humanBytes(b.bytes_transferred)],
            ['created', localTime(b.created_at)],
            ['completed', localTime(b.completed_at)],
            ['verified', b.verified_at ? `${b.verify_status ?? ''} ${localTime(b.verified_at)}` : 'never'],
            ['chain', (b.chain ?? []).join(' <- ') || '-'],
            ['dependents', (b.dependents ?? []).join(', ') || 'none'],
          ]),
        );
      }),
    );

  backup
    .command('chain')
    .description('the backup chain of each disk of a VM: full, then incrementals, with sizes')
    .requiredOption('--vm <name|context-id>', 'the VM')
    .option('--disk <n>', 'only this disk', int('--disk'))
    .addHelpText('after', example('sendense-ctl backup chain --vm web01'))
    .action(
      act(async (ctx, o: { vm: string; disk?: number }) => {
        const c = (await unwrap(ctx.api.GET('/api/v1/backup/chain', { params: { query: { ...vmSelector(o.vm), ...(o.disk !== undefined ? { disk_id: o.disk } : {}) } } }))) as unknown as Chain;
        ctx.result(c, () => {
          if (!c.chains.length) return `${c.vm_name} has no backup chain yet; start one: sendense-ctl backup start --vm ${c.vm_name} --type full`;
          return c.chains
            .map(
              (ch) =>
                `disk ${ch.disk_id}: ${ch.total_backups} restore point${ch.total_backups === 1 ? '' : 's'}, ${humanBytes(ch.total_size_bytes)} stored, disk ${humanBytes(ch.virtual_size_bytes)}\n` +
                table(BACKUP_COLS, backupRows(ch.restore_points), ctx.width),
            )
            .join('\n\n');
        });
      }),
    );

  backup
    .command('delete')
    .description('delete a restore point (refused while others depend on it, it is mounted or running)')
    .argument('<backup-id>')
    .addHelpText('after', example('sendense-ctl backup delete backup-ctx-web01-1a2b-disk0-incr-20261201T220000'))
    .action(
      act(async (ctx, id: string) => {
        try {
          await unwrap(ctx.api.DELETE('/api/v1/backup/{id}', { params: { path: { id } } }));
        } catch (err) {
          if (err instanceof ApiError && err.status === 409) {
            const deps = Array.isArray(err.body?.['dependents']) ? (err.body['dependents'] as string[]) : [];
            throw new CliError(
              err.message,
              EXIT.usage,
              deps.length ? `merge the chain first: sendense-ctl backup consolidate --vm VM --disk N (or delete ${deps.join(', ')} first)` : 'unmount it or wait for its job to end',
            );
          }
          throw err;
        }
        ctx.result({ deleted: id }, () => `deleted ${id}`);
      }),
    );

  backup
    .command('verify')
    .description('verify a restore point: qemu-img check and the checksum taken at backup time')
    .argument('<backup-id>')
    .addHelpText('after', example('sendense-ctl backup verify backup-ctx-web01-1a2b-disk0-full-20261201T220000'))
    .action(
      act(async (ctx, id: string) => {
        ctx.note(`verifying ${id} (reads the whole chain)…`);
        const r = (await unwrap(ctx.api.POST('/api/v1/backup/{id}/verify', { params: { path: { id } } }))) as unknown as { ok: boolean; problems?: string[]; [k: string]: unknown };
        ctx.result(r, () => (r.ok ? `${id}: ok` : `${id}: FAILED\n${(r.problems ?? []).map((p) => `  ${p}`).join('\n')}`));
        if (!r.ok) throw new CliError(`verification of ${id} failed`, EXIT.jobFailed, 'keep this restore point out of use and take a new full backup');
      }),
    );

  backup
    .command('consolidate')
    .description('merge the oldest restore points of a disk chain into one (every remaining point reads as before)')
    .requiredOption('--vm <name|context-id>', 'the VM')
    .requiredOption('--disk <n>', 'the disk', int('--disk'))
    .option('--keep <n>', 'keep this many newest restore points unmerged (default: all but the newest are merged)', int('--keep', 1))
    .option('--up-to <backup-id>', 'merge the full and everything up to this restore point')
    .addHelpText('after', example('sendense-ctl backup consolidate --vm web01 --disk 0 --keep 7'))
    .action(
      act(async (ctx, o: { vm: string; disk: number; keep?: number; upTo?: string }) => {
        let upTo = o.upTo;
        if (o.keep !== undefined && !upTo) {
          const c = (await unwrap(ctx.api.GET('/api/v1/backup/chain', { params: { query: { ...vmSelector(o.vm), disk_id: o.disk } } }))) as unknown as Chain;
          const found = c.chains.find((x) => x.disk_id === o.disk);
          if (!found) {
            throw new CliError(`${o.vm} has no restore points of disk ${o.disk}`, EXIT.notFound, `see its disks and chains with: sendense-ctl backup chain --vm ${o.vm}`);
          }
          const points = found.restore_points;
          if (points.length <= o.keep) {
            ctx.result({ merged: false, reason: `the chain has ${points.length} restore points, --keep ${o.keep}` }, () => `nothing to merge: disk ${o.disk} has ${points.length} restore point(s), --keep ${o.keep}`);
            return;
          }
          upTo = points[points.length - o.keep - 1]?.id;
        }
        const r = await unwrap(ctx.api.POST('/api/v1/backup/chain/consolidate', { body: { ...vmSelector(o.vm), disk_id: o.disk, ...(upTo ? { up_to_backup_id: upTo } : {}) } }));
        const doc = r as unknown as { survivorId?: string; removedIds?: string[]; rebasedIds?: string[] };
        ctx.result(doc, () => `merged ${(doc.removedIds ?? []).length} restore point(s) into ${doc.survivorId ?? '?'}${doc.rebasedIds?.length ? `; rebased ${doc.rebasedIds.join(', ')}` : ''}`);
      }),
    );

  backup
    .command('mount')
    .description('mount a restore point read-only; prints the mount id and its partitions')
    .requiredOption('--backup-id <id>', 'the restore point')
    .addHelpText('after', example('sendense-ctl backup mount --backup-id ID', 'sendense-ctl backup ls --mount MOUNT-ID p1/etc'))
    .action(
      act(async (ctx, o: { backupId: string }) => {
        const m = await mountBackup(ctx, o.backupId);
        ctx.result(m, () => `${m.mount_id}\n${renderPartitions(m, ctx.width)}`);
        ctx.note(`browse it: sendense-ctl backup ls --mount ${m.mount_id} ${m.partitions.find((p) => p.mounted)?.name ?? ''}; unmount: sendense-ctl backup unmount ${m.mount_id}`);
      }),
    );

  backup
    .command('mounts')
    .description('active mounts')
    .addHelpText('after', example('sendense-ctl backup mounts'))
    .action(
      act(async (ctx) => {
        const ms = await listMounts(ctx);
        ctx.result(ms, () =>
          ms.length
            ? table([{ header: 'MOUNT', min: 36 }, { header: 'BACKUP', min: 20 }, { header: 'PARTITIONS' }, { header: 'SINCE', min: 19 }], ms.map((m) => [m.mount_id, m.backup_id ?? '-', m.partitions.filter((p) => p.mounted).map((p) => p.name).join(','), localTime(m.created_at)]), ctx.width)
            : 'no active mounts',
        );
      }),
    );

  backup
    .command('ls')
    .description('list a directory of a mount (paths start with the partition: p1/etc)')
    .requiredOption('--mount <mount-id>', 'the mount (sendense-ctl backup mount)')
    .argument('[path]', 'directory inside the mount', '')
    .option('-l, --long', 'mode, size and time of each entry')
    .addHelpText('after', example('sendense-ctl backup ls --mount MOUNT-ID', 'sendense-ctl backup ls --mount MOUNT-ID p1/etc --long'))
    .action(
      act(async (ctx, path: string, o: { mount: string; long?: boolean }) => {
        const rel = guestPath(path);
        const entries = await listAll(ctx, o.mount, rel);
        const doc = { path: rel, total: entries.length, entries: entries.map((e) => ({ ...e, mode: octalMode(e.mode) })) };
        ctx.result(doc, () => {
          if (!entries.length) return '(empty)';
          const name = (e: Entry) => (e.type === 'dir' ? `${e.name}/` : e.type === 'symlink' ? `${e.name} -> ${e.symlinkTarget ?? '?'}` : e.name);
          if (!o.long) return entries.map(name).join('\n');
          return table(
            [{ header: 'MODE', min: 10 }, { header: 'SIZE', right: true, min: 8 }, { header: 'MODIFIED', min: 19 }, { header: 'NAME' }],
            entries.map((e) => [modeString(e.type, parseMode(e.mode, 0)), e.type === 'dir' ? '-' : humanBytes(e.size), localTime(e.mtime), name(e)]),
            ctx.width,
          );
        });
      }),
    );

  backup
    .command('extract')
    .description('copy a file or a directory out of a restore point (mounts it when needed, unmounts what it mounted)')
    .requiredOption('--backup-id <id>', 'the restore point')
    .option('--file <guest path>', 'a file, as the guest sees it (/etc/hosts)')
    .option('--dir <guest path>', 'a directory, unpacked below --output (modes and symlinks kept)')
    .requiredOption('--output <local path>', 'where to write it (a file name, or an existing directory for --file)')
    .option('--partition <name>', 'the partition holding the path (default: the one that has it)')
    .option('--resume', 'continue an interrupted --file download (Range request)')
    .addHelpText('after', example('sendense-ctl backup extract --backup-id ID --file /etc/hosts --output ./hosts', 'sendense-ctl backup extract --backup-id ID --dir /var/www --output ./www', 'sendense-ctl backup extract --backup-id ID --file /data/big.img --output . --resume'))
    .action(
      act(async (ctx, o: { backupId: string; file?: string; dir?: string; output: string; partition?: string; resume?: boolean }) => {
        if (Boolean(o.file) === Boolean(o.dir)) throw new CliError('give exactly one of --file and --dir', EXIT.usage, 'see sendense-ctl backup extract --help');
        if (o.resume && o.dir) throw new CliError('--resume works with --file only', EXIT.usage, 'drop --resume for a directory (a directory always comes down whole)');
        const guest = guestPath(o.file ?? o.dir ?? '');
        let mount = (await listMounts(ctx)).find((m) => m.backup_id === o.backupId);
        const ours = !mount;
        if (!mount) {
          ctx.note(`mounting ${o.backupId}…`);
          mount = await mountBackup(ctx, o.backupId);
        }
        try {
          const { partition, entry } = await locate(ctx, mount, guest, o.partition);
          const rel = guest ? `${partition}/${guest}` : partition;
          if (o.file) {
            if (entry.type !== 'file') throw new CliError(`/${guest} is a ${entry.type === 'dir' ? 'directory' : entry.type}, not a regular file`, EXIT.usage, entry.type === 'dir' ? 'use --dir for a directory' : undefined);
            const dest = await fileDestination(o.output, guest);
            const r = await downloadFile(ctx, mount.mount_id, rel, entry, dest, Boolean(o.resume));
            ctx.result({ backup_id: o.backupId, partition, path: `/${guest}`, ...r, size: entry.size }, () => `${dest}  ${humanBytes(entry.size)}${r.resumed_from ? ` (resumed at ${humanBytes(r.resumed_from)})` : ''}`);
          } else {
            if (entry.type !== 'dir') throw new CliError(`/${guest} is not a directory`, EXIT.usage, 'use --file for a file');
            const r = await downloadDir(ctx, mount.mount_id, rel, o.output);
            ctx.result({ backup_id: o.backupId, partition, path: `/${guest}`, ...r }, () => `${r.output}  ${r.entries} entries, ${humanBytes(r.bytes)}`);
          }
        } finally {
          if (ours) {
            await unwrap(ctx.api.DELETE('/api/v1/restore/{mountId}', { params: { path: { mountId: mount.mount_id } } })).catch((err: unknown) =>
              ctx.note(`could not unmount ${mount.mount_id}: ${(err as Error).message}; run: sendense-ctl backup unmount ${mount.mount_id}`),
            );
          }
        }
      }),
    );

  backup
    .command('unmount')
    .description('unmount a restore point')
    .argument('<mount-id>')
    .addHelpText('after', example('sendense-ctl backup unmount 6f1c0c1e-5b7d-4b8e-9a51-3d3c2b1a0f9e'))
    .action(
      act(async (ctx, mountId: string) => {
        await unwrap(ctx.api.DELETE('/api/v1/restore/{mountId}', { params: { path: { mountId } } }));
        ctx.result({ unmounted: mountId }, () => `unmounted ${mountId}`);
      }),
    );

  // ---- restore (whole disks) ----
  const restore = program.command('restore').description('whole-disk restores: instant access over NBD, disk images');

  interface ExportView {
    name: string;
    backup_id: string;
    uri: string;
    size_bytes: number;
    writable: boolean;
    tls: boolean;
    tls_psk?: { identity: string; key: string };
    expires_at: string | null;
    created_at: string;
  }
  const exportRows = (xs: ExportView[]) => xs.map((e) => [e.name, e.backup_id, e.writable ? 'rw (overlay)' : 'ro', humanBytes(e.size_bytes), e.uri, e.expires_at ? localTime(e.expires_at) : '-']);
  const EXPORT_COLS = [{ header: 'NAME', min: 30 }, { header: 'BACKUP', min: 20 }, { header: 'MODE' }, { header: 'SIZE', right: true }, { header: 'URI' }, { header: 'EXPIRES', min: 19 }];

  restore
    .command('export')
    .description('serve a restore point (its whole chain) over NBD for instant access; prints the NBD URI')
    .option('--backup-id <id>', 'the restore point to serve')
    .option('--writable', 'clients write a temporary overlay (discarded when the export ends); the backup is never written')
    .option('--idle-timeout <seconds>', 'end the export after this long with no client (60-604800, default 3600)', int('--idle-timeout', 60))
    .option('--list', 'list the instant-access exports instead')
    .option('--end <name>', 'end this export instead (its overlay is discarded)')
    .addHelpText(
      'after',
      example(
        'sendense-ctl restore export --backup-id ID',
        'nbdcopy nbd://127.0.0.1:10811/backup-... disk.raw',
        'sendense-ctl restore export --backup-id ID --writable --idle-timeout 600',
        'sendense-ctl restore export --list',
        'sendense-ctl restore export --end backup-ctx-...-restore-20261202T060000123',
      ),
    )
    .action(
      act(async (ctx, o: { backupId?: string; writable?: boolean; idleTimeout?: number; list?: boolean; end?: string }) => {
        const modes = [o.backupId !== undefined, Boolean(o.list), o.end !== undefined].filter(Boolean).length;
        if (modes !== 1) throw new CliError('give exactly one of --backup-id, --list and --end', EXIT.usage, 'see sendense-ctl restore export --help');
        if (o.list) {
          const res = await ctx.raw.request('GET', '/api/v1/restore/export');
          const xs = (await res.json()) as ExportView[];
          ctx.result(xs, () => (xs.length ? table(EXPORT_COLS, exportRows(xs), ctx.width) : 'no instant-access exports'));
          return;
        }
        if (o.end !== undefined) {
          await ctx.raw.request('DELETE', `/api/v1/restore/export/${encodeURIComponent(o.end)}`);
          ctx.result({ ended: o.end }, () => `ended ${o.end}`);
          return;
        }
        const e = await unwrap(
          ctx.api.POST('/api/v1/restore/export', {
            body: { backup_id: o.backupId as string, writable: Boolean(o.writable), idle_timeout_seconds: o.idleTimeout ?? 3600 },
          }),
        ) as unknown as ExportView;
        ctx.result(e, () => e.uri);
        if (e.tls_psk) ctx.note(`TLS-PSK: put "${e.tls_psk.identity}:${e.tls_psk.key}" in a 0600 file and add ?tls-psk-file=FILE to the URI (the key is not shown again)`);
        ctx.note(`${e.writable ? 'writable (temporary overlay)' : 'read-only'}, ${humanBytes(e.size_bytes)}; ends ${e.expires_at ? `at ${localTime(e.expires_at)} if idle` : 'when ended'}: sendense-ctl restore export --end ${e.name}`);
      }),
    );

  restore
    .command('image')
    .description('download a restore point as one self-contained disk image (raw, qcow2 or streamOptimized vmdk)')
    .requiredOption('--backup-id <id>', 'the restore point')
    .addOption(new Option('--format <format>', 'image format').choices(['raw', 'qcow2', 'vmdk']).default('raw'))
    .requiredOption('--output <file>', 'where to write the image')
    .option('--resume', 'continue an interrupted raw download (Range request)')
    .addHelpText('after', example('sendense-ctl restore image --backup-id ID --format qcow2 --output ./web01-disk0.qcow2', 'sendense-ctl restore image --backup-id ID --output ./disk.raw --resume'))
    .action(
      act(async (ctx, o: { backupId: string; format: ImageFormat; output: string; resume?: boolean }) => {
        const r = await downloadImage(ctx, o.backupId, o.format, o.output, Boolean(o.resume));
        ctx.result({ backup_id: o.backupId, ...r }, () => `${r.output}  ${o.format}, ${humanBytes(r.bytes + r.resumed_from)}${r.resumed_from ? ` (resumed at ${humanBytes(r.resumed_from)})` : ''}`);
      }),
    );

  restore
    .command('disk')
    .description('write a restore point back into a disk of a powered-off VM: quick rollback (only what changed since it) or a full write')
    .requiredOption('--backup-id <id>', 'the restore point')
    .addOption(new Option('--mode <mode>', 'quick: only the areas changed since the restore point (full when that is no longer known); full: the whole disk').choices(['quick', 'full']).default('quick'))
    .option('--target-vm <context-id>', "VM to write into (default: the restore point's VM)")
    .option('--target-disk <device-key>', "device key of the disk to write (default: the restore point's disk)", int('--target-disk', 0))
    .option('--wait', 'follow the job to its end (progress on stderr; exit 6 when it fails)')
    .addHelpText('after', example('sendense-ctl restore disk --backup-id ID --wait', 'sendense-ctl restore disk --backup-id ID --mode full --target-vm ctx-web02-1a2b3c4d --target-disk 2000'))
    .action(
      act(async (ctx, o: { backupId: string; mode: 'quick' | 'full'; targetVm?: string; targetDisk?: number; wait?: boolean }) => {
        const started = (await unwrap(
          ctx.api.POST('/api/v1/restore/disk', {
            body: {
              backup_id: o.backupId,
              mode: o.mode,
              ...(o.targetVm ? { target_vm_context_id: o.targetVm } : {}),
              ...(o.targetDisk !== undefined ? { target_device_key: o.targetDisk } : {}),
            } as never,
          }),
        )) as unknown as { run_id: string; target_vm_name: string; target_device_key: number; mode: string };
        if (!o.wait) {
          ctx.result(started, () => `${started.run_id}\n`);
          ctx.note(`queued ${started.mode} restore into ${started.target_vm_name} disk ${started.target_device_key}; follow it with: sendense-ctl job watch ${started.run_id}`);
          return;
        }
        ctx.note(`${started.mode} restore into ${started.target_vm_name} disk ${started.target_device_key} (job ${started.run_id})`);
        const end = await watchJob(ctx, ctx.raw, started.run_id);
        const doc = (await unwrap(ctx.api.GET('/api/v1/jobs/{runId}', { params: { path: { runId: started.run_id } } }))) as unknown as JobStatus;
        ctx.result(doc, () => renderJob(doc, ctx.width));
        if (end.status !== 'completed' || doc.status !== 'completed') throw jobFailure({ ...doc, status: doc.status === 'completed' ? end.status : doc.status });
      }),
    );

  // ---- job ----
  const job = program.command('job').description('backup jobs: list, show, watch, cancel');

  job
    .command('list')
    .description('backup jobs, newest first')
    .addOption(new Option('--state <state>', 'only jobs in this state').choices(['queued', 'running', 'completed', 'failed', 'cancelled']))
    .option('--vm <name|context-id>', 'only jobs of this VM')
    .option('--limit <n>', 'at most this many (up to 500)', int('--limit', 1), 50)
    .option('--offset <n>', 'skip this many', int('--offset'), 0)
    .addHelpText('after', example('sendense-ctl job list --state failed', 'sendense-ctl job list --vm web01 --limit 5'))
    .action(
      act(async (ctx, o: { state?: string; vm?: string; limit: number; offset: number }) => {
        const query: Record<string, string | number | undefined> = { state: o.state, vm: o.vm, limit: o.limit, offset: o.offset };
        let res: Response;
        try {
          res = await ctx.raw.request('GET', '/api/v1/jobs', { query });
        } catch (err) {
          if (err instanceof ApiError && err.status === 404 && /Cannot GET/i.test(err.message)) {
            throw new CliError('this gateway has no job listing (GET /api/v1/jobs)', EXIT.notFound, 'upgrade the gateway; meanwhile see a job with: sendense-ctl job show RUN-ID (backup start prints it)');
          }
          throw err;
        }
        const doc = (await res.json()) as { total?: number; items: Array<Record<string, unknown>> };
        ctx.result(doc, () => {
          if (!doc.items.length) return o.offset ? `no jobs past ${o.offset}` : 'no jobs';
          const more = doc.total !== undefined && doc.total > o.offset + doc.items.length ? `\n(${doc.items.length} of ${doc.total}; more with --offset ${o.offset + doc.items.length})` : '';
          return table(
            [{ header: 'RUN', min: 36 }, { header: 'VM' }, { header: 'STATUS' }, { header: 'TYPE' }, { header: 'QUEUED', min: 19 }],
            doc.items.map((j) => [String(j['run_id'] ?? ''), String(j['vm_name'] ?? j['vm_context_id'] ?? ''), String(j['status'] ?? j['state'] ?? ''), String(j['requested_type'] ?? j['backup_type'] ?? ''), localTime((j['queued_at'] ?? j['created_at']) as string | null)]),
            ctx.width,
          ) + more;
        });
      }),
    );

  job
    .command('show')
    .description('a job: status, its restore points and its event log')
    .argument('<run-id>')
    .addHelpText('after', example('sendense-ctl job show 0b6c2a9e-7d3f-4c1a-9e8b-5f2d1c0a9b8e'))
    .action(
      act(async (ctx, runId: string) => {
        const doc = (await unwrap(ctx.api.GET('/api/v1/jobs/{runId}', { params: { path: { runId } } }))) as unknown as JobStatus;
        ctx.result(doc, () => renderJob(doc, ctx.width, true));
      }),
    );

  job
    .command('watch')
    .description('follow a job live until it ends (exit 6 when it fails)')
    .argument('<run-id>')
    .addHelpText('after', example('sendense-ctl job watch 0b6c2a9e-7d3f-4c1a-9e8b-5f2d1c0a9b8e', 'sendense-ctl job watch RUN-ID --json   # JSON lines'))
    .action(
      act(async (ctx, runId: string) => {
        const end = await watchJob(ctx, ctx.raw, runId, { jsonLines: ctx.json });
        if (ctx.json) ctx.emit({ event: 'end', run_id: runId, status: end.status, error: end.error });
        else ctx.print(progressLine(runId, end));
        if (end.status !== 'completed') {
          const doc = (await unwrap(ctx.api.GET('/api/v1/jobs/{runId}', { params: { path: { runId } } }))) as unknown as JobStatus;
          throw jobFailure({ run_id: runId, status: end.status, error: doc.error ?? end.error });
        }
      }),
    );

  job
    .command('cancel')
    .description('cancel a queued or running job (its snapshot, exports and half restore points are removed)')
    .argument('<run-id>')
    .addHelpText('after', example('sendense-ctl job cancel 0b6c2a9e-7d3f-4c1a-9e8b-5f2d1c0a9b8e'))
    .action(
      act(async (ctx, runId: string) => {
        const r = (await unwrap(ctx.api.POST('/api/v1/jobs/{runId}/cancel', { params: { path: { runId } } }))) as unknown as { run_id: string; status: string };
        ctx.result(r, () => `${runId}: ${r.status}`);
      }),
    );

  // ---- vm / vcenter ----
  const vm = program.command('vm').description('VMs registered for backup');
  vm.command('list')
    .description('VMs with their disks and last backups')
    .addHelpText('after', example('sendense-ctl vm list'))
    .action(
      act(async (ctx) => {
        const vms = (await unwrap(ctx.api.GET('/api/v1/vms'))) as unknown as Vm[];
        ctx.result(vms, () =>
          vms.length
            ? table(
                [{ header: 'NAME' }, { header: 'CONTEXT ID', min: 20 }, { header: 'DISKS', right: true }, { header: 'SIZE', right: true, min: 8 }, { header: 'CBT' }],
                vms.map((v) => [v.vm_name, v.context_id, String(v.disks.length), humanBytes(v.disks.reduce((s, d) => s + d.capacity_bytes, 0)), v.cbt_enabled ? 'on' : 'off']),
                ctx.width,
              )
            : 'no VMs yet; register a vCenter (sendense-ctl vcenter add) and import its VMs (sendense-ctl vcenter import ID)',
        );
      }),
    );

  const vcenter = program.command('vcenter').description('vCenters the VMs come from');
  vcenter
    .command('add')
    .description('register a vCenter (the password is stored encrypted)')
    .requiredOption('--name <name>', 'a short name')
    .requiredOption('--url <url>', 'its SDK URL (https://vc/sdk)')
    .requiredOption('--username <user>', 'user')
    .option('--password <password>', 'password (visible to other local users in ps: prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--insecure', 'accept any certificate (lab use)')
    .option('--thumbprint <hex>', 'accept exactly this certificate')
    .option('--standin-harness <url>', 'read disks through the VMware stand-in harness (testing)')
    .addHelpText('after', example('sendense-ctl vcenter add --name vc01 --url https://vc01/sdk --username backup@vsphere.local --password-stdin < pw.txt'))
    .action(
      act(async (ctx, o: { name: string; url: string; username: string; password?: string; passwordStdin?: boolean; insecure?: boolean; thumbprint?: string; standinHarness?: string }) => {
        const password = o.passwordStdin ? (await readStdin()).replace(/\r?\n$/, '') : o.password;
        if (!password) throw new CliError('no vCenter password', EXIT.usage, 'give --password-stdin (echo "$PW" | sendense-ctl vcenter add ... --password-stdin) or --password');
        const v = (await unwrap(
          ctx.api.POST('/api/v1/vcenters', {
            body: {
              name: o.name,
              url: o.url,
              username: o.username,
              password,
              ...(o.insecure ? { insecure: true } : {}),
              ...(o.thumbprint ? { thumbprint: o.thumbprint } : {}),
              ...(o.standinHarness ? { disk_reader: { kind: 'standin-nbd' as const, harnessUrl: o.standinHarness } } : {}),
            },
          }),
        )) as unknown as VCenter;
        ctx.result(v, () => `${v.id}`);
        ctx.note(`registered ${v.name}; import its VMs: sendense-ctl vcenter import ${v.id}`);
      }),
    );
  vcenter
    .command('list')
    .description('registered vCenters')
    .addHelpText('after', example('sendense-ctl vcenter list'))
    .action(
      act(async (ctx) => {
        const vs = (await unwrap(ctx.api.GET('/api/v1/vcenters'))) as unknown as VCenter[];
        ctx.result(vs, () => (vs.length ? table([{ header: 'ID', min: 36 }, { header: 'NAME' }, { header: 'URL' }, { header: 'USER' }], vs.map((v) => [v.id, v.name, v.url, v.username]), ctx.width) : 'no vCenters; add one: sendense-ctl vcenter add --help'));
      }),
    );
  vcenter
    .command('import')
    .description("import a vCenter's VMs for backup (all, or those named)")
    .argument('<vcenter-id>')
    .option('--vm <name...>', 'only these VMs')
    .addHelpText('after', example('sendense-ctl vcenter import 3f0a... --vm web01 db01'))
    .action(
      act(async (ctx, id: string, o: { vm?: string[] }) => {
        const r = (await unwrap(ctx.api.POST('/api/v1/vcenters/{id}/import', { params: { path: { id } }, body: o.vm ? { vm_names: o.vm } : {} }))) as unknown as Array<{ vm_name: string; context_id: string; disks: number; cbt_enabled: boolean }>;
        ctx.result(r, () => table([{ header: 'NAME' }, { header: 'CONTEXT ID', min: 20 }, { header: 'DISKS', right: true }, { header: 'CBT' }], r.map((v) => [v.vm_name, v.context_id, String(v.disks), v.cbt_enabled ? 'on' : 'off']), ctx.width));
      }),
    );

  // ---- repo ----
  const repo = program.command('repo').description('backup repositories');
  repo
    .command('add')
    .description('create a repository')
    .requiredOption('--name <name>', 'its name')
    .addOption(new Option('--type <type>', 'kind').choices(['local', 's3', 'azure', 'nfs']).default('local'))
    .option('--path <dir>', 'local: its directory on the storage node')
    .option('--storage-node <node>', "storage node that serves it (default: the gateway's)")
    .addHelpText('after', example('sendense-ctl repo add --name local --path /var/lib/sendense/backups'))
    .action(
      act(async (ctx, o: { name: string; type: 'local' | 's3' | 'azure' | 'nfs'; path?: string; storageNode?: string }) => {
        const r = (await unwrap(ctx.api.POST('/api/v1/repositories', { body: { name: o.name, type: o.type, ...(o.path ? { path: o.path } : {}), ...(o.storageNode ? { storage_node: o.storageNode } : {}) } }))) as unknown as Repo;
        ctx.result(r, () => `${r.id}  ${r.name}  ${humanBytes(r.available_size_bytes)} free`);
      }),
    );
  repo
    .command('list')
    .description('repositories with their space')
    .addHelpText('after', example('sendense-ctl repo list'))
    .action(
      act(async (ctx) => {
        const rs = (await unwrap(ctx.api.GET('/api/v1/repositories'))) as unknown as Repo[];
        ctx.result(rs, () =>
          rs.length
            ? table([{ header: 'NAME' }, { header: 'TYPE' }, { header: 'NODE' }, { header: 'TOTAL', right: true, min: 8 }, { header: 'FREE', right: true, min: 8 }, { header: 'ID', min: 36 }], rs.map((r) => [r.name, r.type, r.storage_node, humanBytes(r.total_size_bytes), humanBytes(r.available_size_bytes), r.id]), ctx.width)
            : 'no repositories; add one: sendense-ctl repo add --name local --path /var/lib/sendense/backups',
        );
      }),
    );
  repo
    .command('space')
    .description('total, free and used space of a repository')
    .argument('<name|id>')
    .addHelpText('after', example('sendense-ctl repo space local'))
    .action(
      act(async (ctx, id: string) => {
        const r = (await unwrap(ctx.api.GET('/api/v1/repositories/{id}/space', { params: { path: { id } } }))) as unknown as Repo;
        ctx.result(r, () =>
          details([
            ['repository', `${r.name} (${r.type}, node ${r.storage_node})`],
            ['total', humanBytes(r.total_size_bytes)],
            ['free', humanBytes(r.available_size_bytes)],
            ['used by backups', humanBytes(r.used_by_backups_bytes)],
            ['measured', r.measured],
          ]),
        );
      }),
    );

  // ---- retention ----
  const retention = program.command('retention').description('retention policies (keep-last-N and GFS)');
  retention
    .command('set')
    .description('set the policy of a repository, or of one VM in it')
    .requiredOption('--repository <name|id>', 'the repository')
    .option('--vm <context-id>', 'only this VM (a context id, ctx-...)')
    .option('--keep-last <n>', 'keep the newest N restore points', int('--keep-last'), 0)
    .option('--daily <n>', 'keep one a day for N days', int('--daily'), 0)
    .option('--weekly <n>', 'keep one a week for N weeks', int('--weekly'), 0)
    .option('--monthly <n>', 'keep one a month for N months', int('--monthly'), 0)
    .addHelpText('after', example('sendense-ctl retention set --repository local --keep-last 7 --weekly 4 --monthly 12'))
    .action(
      act(async (ctx, o: { repository: string; vm?: string; keepLast: number; daily: number; weekly: number; monthly: number }) => {
        const p = (await unwrap(
          ctx.api.PUT('/api/v1/retention/policy', { body: { repository: o.repository, ...(o.vm ? { vm_context_id: o.vm } : {}), keep_last: o.keepLast, daily: o.daily, weekly: o.weekly, monthly: o.monthly } }),
        )) as unknown as Policy;
        ctx.result(p, () => `policy ${p.id}: keep last ${p.keep_last}, daily ${p.daily}, weekly ${p.weekly}, monthly ${p.monthly}`);
      }),
    );
  retention
    .command('show')
    .description('retention policies')
    .addHelpText('after', example('sendense-ctl retention show'))
    .action(
      act(async (ctx) => {
        const ps = (await unwrap(ctx.api.GET('/api/v1/retention/policy'))) as unknown as Policy[];
        // Operators name repositories; the table shows the name (the JSON keeps the id).
        const names = new Map<string, string>();
        if (!ctx.json && ps.length) for (const r of (await unwrap(ctx.api.GET('/api/v1/repositories'))) as unknown as Repo[]) names.set(r.id, r.name);
        ctx.result(ps, () =>
          ps.length
            ? table(
                [{ header: 'REPOSITORY' }, { header: 'VM', min: 20 }, { header: 'LAST', right: true }, { header: 'DAILY', right: true }, { header: 'WEEKLY', right: true }, { header: 'MONTHLY', right: true }],
                ps.map((p) => [names.get(p.repository_id) ?? p.repository_id, p.vm_context_id ?? '(all)', String(p.keep_last), String(p.daily), String(p.weekly), String(p.monthly)]),
                ctx.width,
              )
            : 'no retention policies; set one: sendense-ctl retention set --help',
        );
      }),
    );
  retention
    .command('apply')
    .description('apply the policy now (pruning merges instead of breaking chains)')
    .requiredOption('--repository <name|id>', 'the repository')
    .option('--vm <context-id>', 'only this VM')
    .option('--dry-run', 'only list what would go')
    .addHelpText('after', example('sendense-ctl retention apply --repository local --dry-run'))
    .action(
      act(async (ctx, o: { repository: string; vm?: string; dryRun?: boolean }) => {
        const r = (await unwrap(ctx.api.POST('/api/v1/retention/apply', { body: { repository: o.repository, ...(o.vm ? { vm_context_id: o.vm } : {}), dry_run: Boolean(o.dryRun) } }))) as unknown as Record<string, unknown>;
        const count = (k: string) => (Array.isArray(r[k]) ? (r[k] as unknown[]).length : 0);
        ctx.result(r, () => `${o.dryRun ? 'would keep' : 'kept'} ${count('keep')}, ${o.dryRun ? 'would delete' : 'deleted'} ${count('delete')}, ${o.dryRun ? 'would merge' : 'merged'} ${count('merge')}${count('errors') ? `, ${count('errors')} error(s): ${JSON.stringify(r['errors'])}` : ''}`);
      }),
    );

  addPolicyCommands(program, act);

  // ---- apikey ----
  const apikey = program.command('apikey').description('API keys (create talks to DATABASE_URL directly, to bootstrap the first admin key)');
  apikey
    .command('create')
    .description('create an API key and print it once (needs DATABASE_URL)')
    .requiredOption('--role <role>', `one of ${API_ROLES.join(', ')}`, oneOf(API_ROLES))
    .option('--name <name>', 'what the key is for', 'created by sendense-ctl')
    .addHelpText('after', example('DATABASE_URL=mysql://root@127.0.0.1/sendense sendense-ctl apikey create --role admin --name "first admin"'))
    .action(
      act(async (ctx, o: { role: ApiRole; name: string }) => {
        const { DATABASE_URL } = loadEnv({ DATABASE_URL: commonEnv.DATABASE_URL }, io.env);
        const prisma = createPrismaClient(DATABASE_URL);
        try {
          const k = await new ApiKeyRepository(prisma).create(o.name, o.role);
          ctx.result(k, () => k.key);
          ctx.note(`created ${k.role} key ${k.id} ("${k.name}"). It is shown only now: store it safely (sendense-ctl login --api-key ...).`);
        } finally {
          await prisma.$disconnect();
        }
      }),
    );
  apikey
    .command('list')
    .description('API keys (never the keys themselves); admin keys only')
    .addHelpText('after', example('sendense-ctl apikey list'))
    .action(
      act(async (ctx) => {
        const ks = (await unwrap(ctx.api.GET('/api/v1/apikeys'))) as unknown as Array<{ id: string; name: string; role: string; prefix: string; createdAt: string; lastUsedAt: string | null; revokedAt: string | null }>;
        ctx.result(ks, () =>
          table([{ header: 'ID', min: 36 }, { header: 'ROLE' }, { header: 'KEY' }, { header: 'STATE' }, { header: 'NAME' }], ks.map((k) => [k.id, k.role, `sdk_${k.prefix}_…`, k.revokedAt ? 'revoked' : 'active', k.name]), ctx.width),
        );
      }),
    );
  apikey
    .command('revoke')
    .description('revoke an API key')
    .argument('<id>')
    .addHelpText('after', example('sendense-ctl apikey revoke 5d0e...'))
    .action(
      act(async (ctx, id: string) => {
        await unwrap(ctx.api.DELETE('/api/v1/apikeys/{id}', { params: { path: { id } } }));
        ctx.result({ revoked: id }, () => `revoked ${id}`);
      }),
    );

  // ---- completion ----
  program
    .command('completion')
    .description('print a shell completion script')
    .argument('<shell>', 'bash or zsh', oneOf(['bash', 'zsh'] as const))
    .addHelpText('after', example('source <(sendense-ctl completion bash)', 'sendense-ctl completion zsh > "${fpath[1]}/_sendense-ctl"'))
    .action((shell: 'bash' | 'zsh') => {
      io.stdout.write(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
    });

  return program;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function renderPartitions(m: Mount, width: number): string {
  return table(
    [{ header: 'PARTITION' }, { header: 'FS' }, { header: 'SIZE', right: true, min: 8 }, { header: 'STATE' }],
    m.partitions.map((p) => [p.name, p.fsType ?? '-', humanBytes(p.sizeBytes), p.mounted ? 'mounted' : `not mounted${p.error ? `: ${p.error}` : ''}`]),
    width,
  );
}

function renderJob(doc: JobStatus, width: number, withEvents = false): string {
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

/** Run the CLI; answers the exit code (main.ts exits with it). */
export async function runCli(argv: string[], io: Io = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const e = toCliError(err);
    io.stderr.write(`sendense-ctl: ${e.message}\n${e.hint ? `  next: ${e.hint}\n` : ''}`);
    return e.code;
  }
}

export type { ProgressEvent };
