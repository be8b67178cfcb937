import type { Command } from 'commander';
import { unwrap } from '@sendense/api-client';
import { CliError, EXIT } from '../errors';
import { downloadDir, downloadFile, fileDestination, guestPath, listAll, listMounts, locate, mountBackup, type Entry } from '../extract';
import { humanBytes, localTime, modeString, octalMode, parseMode, table } from '../format';
import { example, renderPartitions, type Act } from './kit';

/** sendense-ctl backup mount|mounts|ls|extract|unmount: file-level restore from a mounted restore point. */
export function addBackupFileCommands(backup: Command, act: Act): void {
  mount(backup, act);
  mounts(backup, act);
  ls(backup, act);
  extract(backup, act);
  unmount(backup, act);
}

/** backup mount */
function mount(backup: Command, act: Act): void {
  backup
    .command('mount')
    .description('mount a restore point read-only; prints the mount id and its partitions')
    .requiredOption('--backup-id <id>', 'the restore point')
    .addHelpText('after', example('sendense-ctl backup mount --backup-id ID', 'sendense-ctl backup ls --mount MOUNT-ID p1/etc'))
    .action(
      act(async (ctx, o: { backupId: string }) => {
        const m = await mountBackup(ctx, o.backupId);
        ctx.result(m, () => `${m.mount_id}\n${renderPartitions(m, ctx.width)}`);
        ctx.note(
          `browse it: sendense-ctl backup ls --mount ${m.mount_id} ${m.partitions.find((p) => p.mounted)?.name ?? ''}; unmount: sendense-ctl backup unmount ${m.mount_id}`,
        );
      }),
    );
}

/** backup mounts */
function mounts(backup: Command, act: Act): void {
  backup
    .command('mounts')
    .description('active mounts')
    .addHelpText('after', example('sendense-ctl backup mounts'))
    .action(
      act(async (ctx) => {
        const ms = await listMounts(ctx);
        ctx.result(ms, () =>
          ms.length
            ? table(
                [{ header: 'MOUNT', min: 36 }, { header: 'BACKUP', min: 20 }, { header: 'PARTITIONS' }, { header: 'SINCE', min: 19 }],
                ms.map((m) => [
                  m.mount_id,
                  m.backup_id ?? '-',
                  m.partitions
                    .filter((p) => p.mounted)
                    .map((p) => p.name)
                    .join(','),
                  localTime(m.created_at),
                ]),
                ctx.width,
              )
            : 'no active mounts',
        );
      }),
    );
}

/** backup ls */
function ls(backup: Command, act: Act): void {
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
}

/** backup extract */
function extract(backup: Command, act: Act): void {
  backup
    .command('extract')
    .description('copy a file or a directory out of a restore point (mounts it when needed, unmounts what it mounted)')
    .requiredOption('--backup-id <id>', 'the restore point')
    .option('--file <guest path>', 'a file, as the guest sees it (/etc/hosts)')
    .option('--dir <guest path>', 'a directory, unpacked below --output (modes and symlinks kept)')
    .requiredOption('--output <local path>', 'where to write it (a file name, or an existing directory for --file)')
    .option('--partition <name>', 'the partition holding the path (default: the one that has it)')
    .option('--resume', 'continue an interrupted --file download (Range request)')
    .addHelpText(
      'after',
      example(
        'sendense-ctl backup extract --backup-id ID --file /etc/hosts --output ./hosts',
        'sendense-ctl backup extract --backup-id ID --dir /var/www --output ./www',
        'sendense-ctl backup extract --backup-id ID --file /data/big.img --output . --resume',
      ),
    )
    .action(
      act(async (ctx, o: { backupId: string; file?: string; dir?: string; output: string; partition?: string; resume?: boolean }) => {
        if (Boolean(o.file) === Boolean(o.dir))
          throw new CliError('give exactly one of --file and --dir', EXIT.usage, 'see sendense-ctl backup extract --help');
        if (o.resume && o.dir)
          throw new CliError('--resume works with --file only', EXIT.usage, 'drop --resume for a directory (a directory always comes down whole)');
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
            if (entry.type !== 'file')
              throw new CliError(
                `/${guest} is a ${entry.type === 'dir' ? 'directory' : entry.type}, not a regular file`,
                EXIT.usage,
                entry.type === 'dir' ? 'use --dir for a directory' : undefined,
              );
            const dest = await fileDestination(o.output, guest);
            const r = await downloadFile(ctx, mount.mount_id, rel, entry, dest, Boolean(o.resume));
            ctx.result(
              { backup_id: o.backupId, partition, path: `/${guest}`, ...r, size: entry.size },
              () => `${dest}  ${humanBytes(entry.size)}${r.resumed_from ? ` (resumed at ${humanBytes(r.resumed_from)})` : ''}`,
            );
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
}

/** backup unmount */
function unmount(backup: Command, act: Act): void {
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
}
