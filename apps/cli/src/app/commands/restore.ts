import { Option, type Command } from 'commander';
import { unwrap, type Schemas } from '@sendense/api-client';
import type { Io } from '../context';
import { CliError, EXIT } from '../errors';
import { downloadImage, type ImageFormat } from '../disk-restore';
import { humanBytes, localTime, table } from '../format';
import { actions, example, followToEnd, int, type Act } from './kit';

/** sendense-ctl restore export|image|disk: whole-disk restores. */
export function addRestoreCommands(program: Command, io: Io): void {
  const act = actions(io);
  const restore = program.command('restore').description('whole-disk restores: instant access over NBD, disk images');
  exportCmd(restore, act);
  image(restore, act);
  disk(restore, act);
}

type ExportView = Schemas['ExportDto'];
const exportRows = (xs: ExportView[]) =>
  xs.map((e) => [e.name, e.backup_id, e.writable ? 'rw (overlay)' : 'ro', humanBytes(e.size_bytes), e.uri, e.expires_at ? localTime(e.expires_at) : '-']);
const EXPORT_COLS = [
  { header: 'NAME', min: 30 },
  { header: 'BACKUP', min: 20 },
  { header: 'MODE' },
  { header: 'SIZE', right: true },
  { header: 'URI' },
  { header: 'EXPIRES', min: 19 },
];

/** restore export */
function exportCmd(restore: Command, act: Act): void {
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
        );
        ctx.result(e, () => e.uri);
        if (e.tls_psk)
          ctx.note(`TLS-PSK: put "${e.tls_psk.identity}:${e.tls_psk.key}" in a 0600 file and add ?tls-psk-file=FILE to the URI (the key is not shown again)`);
        ctx.note(
          `${e.writable ? 'writable (temporary overlay)' : 'read-only'}, ${humanBytes(e.size_bytes)}; ends ${e.expires_at ? `at ${localTime(e.expires_at)} if idle` : 'when ended'}: sendense-ctl restore export --end ${e.name}`,
        );
      }),
    );
}

/** restore image */
function image(restore: Command, act: Act): void {
  restore
    .command('image')
    .description('download a restore point as one self-contained disk image (raw, qcow2 or streamOptimized vmdk)')
    .requiredOption('--backup-id <id>', 'the restore point')
    .addOption(new Option('--format <format>', 'image format').choices(['raw', 'qcow2', 'vmdk']).default('raw'))
    .requiredOption('--output <file>', 'where to write the image')
    .option('--resume', 'continue an interrupted raw download (Range request)')
    .addHelpText(
      'after',
      example(
        'sendense-ctl restore image --backup-id ID --format qcow2 --output ./web01-disk0.qcow2',
        'sendense-ctl restore image --backup-id ID --output ./disk.raw --resume',
      ),
    )
    .action(
      act(async (ctx, o: { backupId: string; format: ImageFormat; output: string; resume?: boolean }) => {
        const r = await downloadImage(ctx, o.backupId, o.format, o.output, Boolean(o.resume));
        ctx.result(
          { backup_id: o.backupId, ...r },
          () => `${r.output}  ${o.format}, ${humanBytes(r.bytes + r.resumed_from)}${r.resumed_from ? ` (resumed at ${humanBytes(r.resumed_from)})` : ''}`,
        );
      }),
    );
}

/** restore disk */
function disk(restore: Command, act: Act): void {
  restore
    .command('disk')
    .description('write a restore point back into a disk of a powered-off VM: quick rollback (only what changed since it) or a full write')
    .requiredOption('--backup-id <id>', 'the restore point')
    .addOption(
      new Option('--mode <mode>', 'quick: only the areas changed since the restore point (full when that is no longer known); full: the whole disk')
        .choices(['quick', 'full'])
        .default('quick'),
    )
    .option('--target-vm <context-id>', "VM to write into (default: the restore point's VM)")
    .option('--target-disk <device-key>', "device key of the disk to write (default: the restore point's disk)", int('--target-disk', 0))
    .option('--wait', 'follow the job to its end (progress on stderr; exit 6 when it fails)')
    .addHelpText(
      'after',
      example(
        'sendense-ctl restore disk --backup-id ID --wait',
        'sendense-ctl restore disk --backup-id ID --mode full --target-vm ctx-web02-1a2b3c4d --target-disk 2000',
      ),
    )
    .action(
      act(async (ctx, o: { backupId: string; mode: 'quick' | 'full'; targetVm?: string; targetDisk?: number; wait?: boolean }) => {
        const started = await unwrap(
          ctx.api.POST('/api/v1/restore/disk', {
            body: {
              backup_id: o.backupId,
              mode: o.mode,
              ...(o.targetVm ? { target_vm_context_id: o.targetVm } : {}),
              ...(o.targetDisk !== undefined ? { target_device_key: o.targetDisk } : {}),
            } as never,
          }),
        );
        if (!o.wait) {
          ctx.result(started, () => `${started.run_id}\n`);
          ctx.note(
            `queued ${started.mode} restore into ${started.target_vm_name} disk ${started.target_device_key}; follow it with: sendense-ctl job watch ${started.run_id}`,
          );
          return;
        }
        ctx.note(`${started.mode} restore into ${started.target_vm_name} disk ${started.target_device_key} (job ${started.run_id})`);
        await followToEnd(ctx, started.run_id);
      }),
    );
}
