import type { Command } from 'commander';
import { unwrap } from '@sendense/api-client';
import type { Io } from '../context';
import { table } from '../format';
import { actions, example, int, type Act } from './kit';

/** sendense-ctl retention set|show|apply */
export function addRetentionCommands(program: Command, io: Io): void {
  const act = actions(io);
  const retention = program.command('retention').description('retention policies (keep-last-N and GFS)');
  set(retention, act);
  show(retention, act);
  apply(retention, act);
}

/** retention set */
function set(retention: Command, act: Act): void {
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
        const p = await unwrap(
          ctx.api.PUT('/api/v1/retention/policy', {
            body: {
              repository: o.repository,
              ...(o.vm ? { vm_context_id: o.vm } : {}),
              keep_last: o.keepLast,
              daily: o.daily,
              weekly: o.weekly,
              monthly: o.monthly,
            },
          }),
        );
        ctx.result(p, () => `policy ${p.id}: keep last ${p.keep_last}, daily ${p.daily}, weekly ${p.weekly}, monthly ${p.monthly}`);
      }),
    );
}

/** retention show */
function show(retention: Command, act: Act): void {
  retention
    .command('show')
    .description('retention policies')
    .addHelpText('after', example('sendense-ctl retention show'))
    .action(
      act(async (ctx) => {
        const ps = await unwrap(ctx.api.GET('/api/v1/retention/policy'));
        // Operators name repositories; the table shows the name (the JSON keeps the id).
        const names = new Map<string, string>();
        if (!ctx.json && ps.length) for (const r of await unwrap(ctx.api.GET('/api/v1/repositories'))) names.set(r.id, r.name);
        ctx.result(ps, () =>
          ps.length
            ? table(
                [
                  { header: 'REPOSITORY' },
                  { header: 'VM', min: 20 },
                  { header: 'LAST', right: true },
                  { header: 'DAILY', right: true },
                  { header: 'WEEKLY', right: true },
                  { header: 'MONTHLY', right: true },
                ],
                ps.map((p) => [
                  names.get(p.repository_id) ?? p.repository_id,
                  p.vm_context_id ?? '(all)',
                  String(p.keep_last),
                  String(p.daily),
                  String(p.weekly),
                  String(p.monthly),
                ]),
                ctx.width,
              )
            : 'no retention policies; set one: sendense-ctl retention set --help',
        );
      }),
    );
}

/** retention apply */
function apply(retention: Command, act: Act): void {
  retention
    .command('apply')
    .description('apply the policy now (pruning merges instead of breaking chains)')
    .requiredOption('--repository <name|id>', 'the repository')
    .option('--vm <context-id>', 'only this VM')
    .option('--dry-run', 'only list what would go')
    .addHelpText('after', example('sendense-ctl retention apply --repository local --dry-run'))
    .action(
      act(async (ctx, o: { repository: string; vm?: string; dryRun?: boolean }) => {
        const r = await unwrap(
          ctx.api.POST('/api/v1/retention/apply', { body: { repository: o.repository, ...(o.vm ? { vm_context_id: o.vm } : {}), dry_run: Boolean(o.dryRun) } }),
        );
        ctx.result(
          r,
          () =>
            `${o.dryRun ? 'would keep' : 'kept'} ${r.keep.length}, ${o.dryRun ? 'would delete' : 'deleted'} ${r.delete.length}, ${o.dryRun ? 'would merge' : 'merged'} ${r.merge.length}${r.errors.length ? `, ${r.errors.length} error(s): ${JSON.stringify(r.errors)}` : ''}`,
        );
      }),
    );
}
