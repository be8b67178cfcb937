import { Option, type Command } from 'commander';
import { ApiError, unwrap } from '@sendense/api-client';
import type { Io } from '../context';
import { CliError, EXIT } from '../errors';
import { details, humanBytes, localTime, table } from '../format';
import { addBackupFileCommands } from './backup-files';
import { BACKUP_COLS, STATUSES, TYPES, actions, backupRows, example, followToEnd, int, vmSelector, type Act, type BackupStatus } from './kit';

/** sendense-ctl backup start|list|show|chain|delete|verify|consolidate, then the mount and file commands. */
export function addBackupCommands(program: Command, io: Io): void {
  const act = actions(io);
  const backup = program.command('backup').description('start, list, inspect, mount and restore from backups');
  start(backup, act);
  list(backup, act);
  show(backup, act);
  chain(backup, act);
  remove(backup, act);
  verify(backup, act);
  consolidate(backup, act);
  addBackupFileCommands(backup, act);
}

/** backup start */
function start(backup: Command, act: Act): void {
  backup
    .command('start')
    .description('start a backup of a VM (all its disks)')
    .requiredOption('--vm <name|context-id>', 'the VM')
    .addOption(new Option('--type <type>', 'backup type').choices(TYPES).default('incremental'))
    .option('--repository <name|id>', 'repository (optional when only one exists)')
    .option('--wait', 'follow the job to its end (progress on stderr; exit 6 when it fails)')
    .addHelpText(
      'after',
      example(
        'sendense-ctl backup start --vm web01 --type full --wait',
        'sendense-ctl backup start --vm ctx-web01-1a2b3c4d --type incremental --repository local',
      ),
    )
    .action(
      act(async (ctx, o: { vm: string; type: (typeof TYPES)[number]; repository?: string; wait?: boolean }) => {
        const started = await unwrap(
          ctx.api.POST('/api/v1/backup/start', { body: { ...vmSelector(o.vm), backup_type: o.type, ...(o.repository ? { repository: o.repository } : {}) } }),
        );
        if (!o.wait) {
          ctx.result(started, () => `${started.run_id}\n`);
          ctx.note(
            `queued ${started.backup_type} backup of ${started.vm_name} to ${started.repository}; follow it with: sendense-ctl job watch ${started.run_id}`,
          );
          return;
        }
        ctx.note(`started ${started.backup_type} backup of ${started.vm_name} to ${started.repository} (job ${started.run_id})`);
        await followToEnd(ctx, started.run_id);
      }),
    );
}

/** backup list */
function list(backup: Command, act: Act): void {
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
        const res = await unwrap(
          ctx.api.GET('/api/v1/backup/list', {
            params: { query: { ...(o.vm ? vmSelector(o.vm) : {}), ...(o.status ? { status: o.status } : {}), limit: o.limit, offset: o.offset } },
          }),
        );
        ctx.result(res, () => {
          if (!res.items.length) return o.vm ? `no backups of ${o.vm} yet; start one: sendense-ctl backup start --vm ${o.vm} --type full` : 'no backups yet';
          const t = table(BACKUP_COLS, backupRows(res.items), ctx.width);
          return res.total > o.offset + res.items.length ? `${t}\n(${res.items.length} of ${res.total}; more with --offset ${o.offset + res.items.length})` : t;
        });
      }),
    );
}

/** backup show */
function show(backup: Command, act: Act): void {
  backup
    .command('show')
    .description('one restore point: sizes, chain, what depends on it')
    .argument('<backup-id>')
    .addHelpText('after', example('sendense-ctl backup show backup-ctx-web01-1a2b-disk0-full-20261201T220000'))
    .action(
      act(async (ctx, id: string) => {
        const b = await unwrap(ctx.api.GET('/api/v1/backup/{id}', { params: { path: { id } } }));
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
}

/** backup chain */
function chain(backup: Command, act: Act): void {
  backup
    .command('chain')
    .description('the backup chain of each disk of a VM: full, then incrementals, with sizes')
    .requiredOption('--vm <name|context-id>', 'the VM')
    .option('--disk <n>', 'only this disk', int('--disk'))
    .addHelpText('after', example('sendense-ctl backup chain --vm web01'))
    .action(
      act(async (ctx, o: { vm: string; disk?: number }) => {
        const c = await unwrap(
          ctx.api.GET('/api/v1/backup/chain', { params: { query: { ...vmSelector(o.vm), ...(o.disk !== undefined ? { disk_id: o.disk } : {}) } } }),
        );
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
}

/** backup delete */
function remove(backup: Command, act: Act): void {
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
              deps.length
                ? `merge the chain first: sendense-ctl backup consolidate --vm VM --disk N (or delete ${deps.join(', ')} first)`
                : 'unmount it or wait for its job to end',
            );
          }
          throw err;
        }
        ctx.result({ deleted: id }, () => `deleted ${id}`);
      }),
    );
}

/** backup verify */
function verify(backup: Command, act: Act): void {
  backup
    .command('verify')
    .description('verify a restore point: qemu-img check and the checksum taken at backup time')
    .argument('<backup-id>')
    .addHelpText('after', example('sendense-ctl backup verify backup-ctx-web01-1a2b-disk0-full-20261201T220000'))
    .action(
      act(async (ctx, id: string) => {
        ctx.note(`verifying ${id} (reads the whole chain)…`);
        const r = await unwrap(ctx.api.POST('/api/v1/backup/{id}/verify', { params: { path: { id } } }));
        ctx.result(r, () => (r.ok ? `${id}: ok` : `${id}: FAILED\n${(r.problems ?? []).map((p) => `  ${p}`).join('\n')}`));
        if (!r.ok) throw new CliError(`verification of ${id} failed`, EXIT.jobFailed, 'keep this restore point out of use and take a new full backup');
      }),
    );
}

/** backup consolidate */
function consolidate(backup: Command, act: Act): void {
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
          const c = await unwrap(ctx.api.GET('/api/v1/backup/chain', { params: { query: { ...vmSelector(o.vm), disk_id: o.disk } } }));
          const found = c.chains.find((x) => x.disk_id === o.disk);
          if (!found) {
            throw new CliError(
              `${o.vm} has no restore points of disk ${o.disk}`,
              EXIT.notFound,
              `see its disks and chains with: sendense-ctl backup chain --vm ${o.vm}`,
            );
          }
          const points = found.restore_points;
          if (points.length <= o.keep) {
            ctx.result(
              { merged: false, reason: `the chain has ${points.length} restore points, --keep ${o.keep}` },
              () => `nothing to merge: disk ${o.disk} has ${points.length} restore point(s), --keep ${o.keep}`,
            );
            return;
          }
          upTo = points[points.length - o.keep - 1]?.id;
        }
        const doc = await unwrap(
          ctx.api.POST('/api/v1/backup/chain/consolidate', { body: { ...vmSelector(o.vm), disk_id: o.disk, ...(upTo ? { up_to_backup_id: upTo } : {}) } }),
        );
        ctx.result(
          doc,
          () =>
            `merged ${(doc.removedIds ?? []).length} restore point(s) into ${doc.survivorId ?? '?'}${doc.rebasedIds?.length ? `; rebased ${doc.rebasedIds.join(', ')}` : ''}`,
        );
      }),
    );
}
