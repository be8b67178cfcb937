import { Option, type Command } from 'commander';
import { unwrap } from '@sendense/api-client';
import type { Io } from '../context';
import { details, humanBytes, table } from '../format';
import { actions, example, type Act } from './kit';

/** sendense-ctl repo add|list|space */
export function addRepoCommands(program: Command, io: Io): void {
  const act = actions(io);
  const repo = program.command('repo').description('backup repositories');
  add(repo, act);
  list(repo, act);
  space(repo, act);
}

/** repo add */
function add(repo: Command, act: Act): void {
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
        const r = await unwrap(
          ctx.api.POST('/api/v1/repositories', {
            body: { name: o.name, type: o.type, ...(o.path ? { path: o.path } : {}), ...(o.storageNode ? { storage_node: o.storageNode } : {}) },
          }),
        );
        ctx.result(r, () => `${r.id}  ${r.name}  ${humanBytes(r.available_size_bytes)} free`);
      }),
    );
}

/** repo list */
function list(repo: Command, act: Act): void {
  repo
    .command('list')
    .description('repositories with their space')
    .addHelpText('after', example('sendense-ctl repo list'))
    .action(
      act(async (ctx) => {
        const rs = await unwrap(ctx.api.GET('/api/v1/repositories'));
        ctx.result(rs, () =>
          rs.length
            ? table(
                [
                  { header: 'NAME' },
                  { header: 'TYPE' },
                  { header: 'NODE' },
                  { header: 'TOTAL', right: true, min: 8 },
                  { header: 'FREE', right: true, min: 8 },
                  { header: 'ID', min: 36 },
                ],
                rs.map((r) => [r.name, r.type, r.storage_node, humanBytes(r.total_size_bytes), humanBytes(r.available_size_bytes), r.id]),
                ctx.width,
              )
            : 'no repositories; add one: sendense-ctl repo add --name local --path /var/lib/sendense/backups',
        );
      }),
    );
}

/** repo space */
function space(repo: Command, act: Act): void {
  repo
    .command('space')
    .description('total, free and used space of a repository')
    .argument('<name|id>')
    .addHelpText('after', example('sendense-ctl repo space local'))
    .action(
      act(async (ctx, id: string) => {
        const r = await unwrap(ctx.api.GET('/api/v1/repositories/{id}/space', { params: { path: { id } } }));
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
}
