import type { Command } from 'commander';
import { unwrap } from '@sendense/api-client';
import type { Io } from '../context';
import { CliError, EXIT } from '../errors';
import { humanBytes, table } from '../format';
import { actions, example, readStdin, type Act } from './kit';

/** sendense-ctl vm list, vcenter add|list|import: what there is to back up. */
export function addInventoryCommands(program: Command, io: Io): void {
  const act = actions(io);
  const vm = program.command('vm').description('VMs registered for backup');
  vmList(vm, act);
  const vcenter = program.command('vcenter').description('vCenters the VMs come from');
  vcenterAdd(vcenter, act);
  vcenterList(vcenter, act);
  vcenterImport(vcenter, act);
}

/** vm list */
function vmList(vm: Command, act: Act): void {
  vm.command('list')
    .description('VMs with their disks and last backups')
    .addHelpText('after', example('sendense-ctl vm list'))
    .action(
      act(async (ctx) => {
        const vms = await unwrap(ctx.api.GET('/api/v1/vms'));
        ctx.result(vms, () =>
          vms.length
            ? table(
                [
                  { header: 'NAME' },
                  { header: 'CONTEXT ID', min: 20 },
                  { header: 'DISKS', right: true },
                  { header: 'SIZE', right: true, min: 8 },
                  { header: 'CBT' },
                ],
                vms.map((v) => [
                  v.vm_name,
                  v.context_id,
                  String(v.disks.length),
                  humanBytes(v.disks.reduce((s, d) => s + d.capacity_bytes, 0)),
                  v.cbt_enabled ? 'on' : 'off',
                ]),
                ctx.width,
              )
            : 'no VMs yet; register a vCenter (sendense-ctl vcenter add) and import its VMs (sendense-ctl vcenter import ID)',
        );
      }),
    );
}

/** vcenter add */
function vcenterAdd(vcenter: Command, act: Act): void {
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
      act(
        async (
          ctx,
          o: {
            name: string;
            url: string;
            username: string;
            password?: string;
            passwordStdin?: boolean;
            insecure?: boolean;
            thumbprint?: string;
            standinHarness?: string;
          },
        ) => {
          const password = o.passwordStdin ? (await readStdin()).replace(/\r?\n$/, '') : o.password;
          if (!password)
            throw new CliError(
              'no vCenter password',
              EXIT.usage,
              'give --password-stdin (echo "$PW" | sendense-ctl vcenter add ... --password-stdin) or --password',
            );
          const v = await unwrap(
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
          );
          ctx.result(v, () => `${v.id}`);
          ctx.note(`registered ${v.name}; import its VMs: sendense-ctl vcenter import ${v.id}`);
        },
      ),
    );
}

/** vcenter list */
function vcenterList(vcenter: Command, act: Act): void {
  vcenter
    .command('list')
    .description('registered vCenters')
    .addHelpText('after', example('sendense-ctl vcenter list'))
    .action(
      act(async (ctx) => {
        const vs = await unwrap(ctx.api.GET('/api/v1/vcenters'));
        ctx.result(vs, () =>
          vs.length
            ? table(
                [{ header: 'ID', min: 36 }, { header: 'NAME' }, { header: 'URL' }, { header: 'USER' }],
                vs.map((v) => [v.id, v.name, v.url, v.username]),
                ctx.width,
              )
            : 'no vCenters; add one: sendense-ctl vcenter add --help',
        );
      }),
    );
}

/** vcenter import */
function vcenterImport(vcenter: Command, act: Act): void {
  vcenter
    .command('import')
    .description("import a vCenter's VMs for backup (all, or those named)")
    .argument('<vcenter-id>')
    .option('--vm <name...>', 'only these VMs')
    .addHelpText('after', example('sendense-ctl vcenter import 3f0a... --vm web01 db01'))
    .action(
      act(async (ctx, id: string, o: { vm?: string[] }) => {
        const r = await unwrap(ctx.api.POST('/api/v1/vcenters/{id}/import', { params: { path: { id } }, body: o.vm ? { vm_names: o.vm } : {} }));
        ctx.result(r, () =>
          table(
            [{ header: 'NAME' }, { header: 'CONTEXT ID', min: 20 }, { header: 'DISKS', right: true }, { header: 'CBT' }],
            r.map((v) => [v.vm_name, v.context_id, String(v.disks), v.cbt_enabled ? 'on' : 'off']),
            ctx.width,
          ),
        );
      }),
    );
}
