import { Option, type Command } from 'commander';
import { ApiError, unwrap } from '@sendense/api-client';
import type { Io } from '../context';
import { CliError, EXIT } from '../errors';
import { localTime, table } from '../format';
import { progressLine, watchJob } from '../progress';
import { actions, example, int, jobFailure, renderJob, type Act } from './kit';

/** sendense-ctl job list|show|watch|cancel */
export function addJobCommands(program: Command, io: Io): void {
  const act = actions(io);
  const job = program.command('job').description('backup jobs: list, show, watch, cancel');
  list(job, act);
  show(job, act);
  watch(job, act);
  cancel(job, act);
}

/** job list */
function list(job: Command, act: Act): void {
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
            throw new CliError(
              'this gateway has no job listing (GET /api/v1/jobs)',
              EXIT.notFound,
              'upgrade the gateway; meanwhile see a job with: sendense-ctl job show RUN-ID (backup start prints it)',
            );
          }
          throw err;
        }
        const doc = (await res.json()) as { total?: number; items: Array<Record<string, unknown>> };
        ctx.result(doc, () => {
          if (!doc.items.length) return o.offset ? `no jobs past ${o.offset}` : 'no jobs';
          const more =
            doc.total !== undefined && doc.total > o.offset + doc.items.length
              ? `\n(${doc.items.length} of ${doc.total}; more with --offset ${o.offset + doc.items.length})`
              : '';
          return (
            table(
              [{ header: 'RUN', min: 36 }, { header: 'VM' }, { header: 'STATUS' }, { header: 'TYPE' }, { header: 'QUEUED', min: 19 }],
              doc.items.map((j) => [
                String(j['run_id'] ?? ''),
                String(j['vm_name'] ?? j['vm_context_id'] ?? ''),
                String(j['status'] ?? j['state'] ?? ''),
                String(j['requested_type'] ?? j['backup_type'] ?? ''),
                localTime((j['queued_at'] ?? j['created_at']) as string | null),
              ]),
              ctx.width,
            ) + more
          );
        });
      }),
    );
}

/** job show */
function show(job: Command, act: Act): void {
  job
    .command('show')
    .description('a job: status, its restore points and its event log')
    .argument('<run-id>')
    .addHelpText('after', example('sendense-ctl job show 0b6c2a9e-7d3f-4c1a-9e8b-5f2d1c0a9b8e'))
    .action(
      act(async (ctx, runId: string) => {
        const doc = await unwrap(ctx.api.GET('/api/v1/jobs/{runId}', { params: { path: { runId } } }));
        ctx.result(doc, () => renderJob(doc, ctx.width, true));
      }),
    );
}

/** job watch */
function watch(job: Command, act: Act): void {
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
          const doc = await unwrap(ctx.api.GET('/api/v1/jobs/{runId}', { params: { path: { runId } } }));
          throw jobFailure({ run_id: runId, status: end.status, error: doc.error ?? end.error });
        }
      }),
    );
}

/** job cancel */
function cancel(job: Command, act: Act): void {
  job
    .command('cancel')
    .description('cancel a queued or running job (its snapshot, exports and half restore points are removed)')
    .argument('<run-id>')
    .addHelpText('after', example('sendense-ctl job cancel 0b6c2a9e-7d3f-4c1a-9e8b-5f2d1c0a9b8e'))
    .action(
      act(async (ctx, runId: string) => {
        const r = await unwrap(ctx.api.POST('/api/v1/jobs/{runId}/cancel', { params: { path: { runId } } }));
        ctx.result(r, () => `${runId}: ${r.status}`);
      }),
    );
}
