import type { Command } from 'commander';
import { unwrap, type Schemas } from '@sendense/api-client';
import type { Io } from '../context';
import { details, humanBytes, localTime, table } from '../format';
import { actions, example, int, type Act } from './kit';

type Policy = Schemas['PolicyDto'];
type Run = Schemas['PolicyRunDto'];

const collect = (v: string, prev: string[] = []) => [...prev, v];

function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  const s = Math.round(ms / 1000);
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function vmsOf(p: Policy): string {
  const parts = [...(p.vms.names ?? []), ...(p.vms.name_pattern ? [`pattern ${p.vms.name_pattern}`] : []), ...(p.vms.folder ? [`folder ${p.vms.folder}`] : [])];
  return parts.join(', ') || '-';
}

function rules(p: Policy): string {
  const r: string[] = [];
  if (p.full_every_days) r.push(`full every ${p.full_every_days} d`);
  if (p.full_after_incrementals) r.push(`full after ${p.full_after_incrementals} incr`);
  if (!r.length) r.push('incremental forever');
  if (p.synthetic_full) r.push('synthetic full');
  return r.join(', ');
}

function showPolicy(p: Policy): string {
  const ret = p.retention;
  return details([
    ['policy', `${p.name} (${p.id})`],
    ['schedule', `${p.cron} (${p.timezone})`],
    ['state', p.paused ? 'paused' : 'active'],
    ['next run', p.next_run_at ? localTime(p.next_run_at) : '-'],
    ['repository', p.repository],
    ['VMs', vmsOf(p)],
    ['type rules', rules(p)],
    [
      'retention',
      ret ? `keep last ${ret.keep_last ?? 0}, daily ${ret.daily ?? 0}, weekly ${ret.weekly ?? 0}, monthly ${ret.monthly ?? 0}` : 'none (keep everything)',
    ],
    ['start window', p.window_end ? `no start after ${p.window_end}` : 'none'],
    ['concurrency', p.concurrency],
    ['stale after', p.max_age_hours ? `${p.max_age_hours} h` : '-'],
    ['last run', p.last_run ? `${p.last_run.status} at ${localTime(p.last_run.started_at)}${p.last_run.message ? `: ${p.last_run.message}` : ''}` : 'never'],
  ]);
}

function historyTable(runs: Run[], width: number): string {
  const rows = runs.map((r) => [
    localTime(r.scheduled_for ?? r.started_at),
    r.trigger,
    r.status,
    r.vms.map((v) => `${v.vm_name}:${v.type === 'incremental' ? 'incr' : v.type}/${v.status}`).join(' ') || '-',
    humanBytes(r.bytes_transferred),
    duration(r.duration_ms),
  ]);
  return table(
    [
      { header: 'SLOT', min: 19 },
      { header: 'TRIGGER' },
      { header: 'RESULT' },
      { header: 'VMS' },
      { header: 'BYTES', right: true, min: 8 },
      { header: 'TOOK', right: true },
    ],
    rows,
    width,
  );
}

/** sendense-ctl policy create|list|show|pause|resume|run|delete|history */
export function addPolicyCommands(program: Command, io: Io): void {
  const act = actions(io);
  const policy = program.command('policy').description('backup policies: schedules that run backups, with their history');
  create(policy, act);
  list(policy, act);
  show(policy, act);
  pauseResume(policy, act);
  run(policy, act);
  remove(policy, act);
  history(policy, act);
}

/** policy create */
function create(policy: Command, act: Act): void {
  policy
    .command('create')
    .description('create a policy (scheduled at once unless --paused)')
    .requiredOption('--name <name>', 'its name')
    .requiredOption('--cron <expr>', 'cron expression, e.g. "0 22 * * *" (5 fields, or 6 with seconds first)')
    .option('--timezone <zone>', 'IANA time zone of the schedule and the window', 'UTC')
    .requiredOption('--repository <name|id>', 'repository the backups go to')
    .option('--vm <name>', 'a VM (name or context id); repeat for more', collect)
    .option('--vm-pattern <glob>', 'VMs whose name matches (* and ?), resolved at every run')
    .option(
      '--folder <path>',
      "VMs in this vCenter folder and its sub-folders (below the datacenter's VM folder, e.g. prod/web; dc1/prod/web with several datacenters), resolved at every run",
    )
    .option('--full-every-days <n>', 'a full when the last full is N days old', int('--full-every-days', 1))
    .option('--full-after <n>', 'a full after N incrementals', int('--full-after', 1))
    .option('--synthetic-full', 'make a due full by consolidating the chain instead of reading the whole VM')
    .option('--keep-last <n>', 'retention after each run: keep the newest N', int('--keep-last'))
    .option('--daily <n>', 'retention: one a day for N days', int('--daily'))
    .option('--weekly <n>', 'retention: one a week for N weeks', int('--weekly'))
    .option('--monthly <n>', 'retention: one a month for N months', int('--monthly'))
    .option('--window-end <HH:MM>', 'no VM backup starts after this time (running ones go on)')
    .option('--concurrency <n>', 'VM backups of one run at a time', int('--concurrency', 1))
    .option('--max-age-hours <n>', "webhook vm.stale when a VM's last good backup is older", int('--max-age-hours', 1))
    .option('--paused', 'create it paused')
    .addHelpText(
      'after',
      example(
        'sendense-ctl policy create --name nightly --cron "0 22 * * *" --timezone Europe/Berlin --repository local --vm-pattern "web-*" --full-every-days 7 --keep-last 14 --window-end 06:00',
      ),
    )
    .action(
      act(async (ctx, o: CreateOptions) => {
        const p = await unwrap(ctx.api.POST('/api/v1/policies', { body: createBody(o) }));
        ctx.result(p, () => showPolicy(p));
      }),
    );
}

/** The options `policy create` takes, as commander names them. */
interface CreateOptions {
  name: string;
  cron: string;
  timezone: string;
  repository: string;
  vm?: string[];
  vmPattern?: string;
  folder?: string;
  fullEveryDays?: number;
  fullAfter?: number;
  syntheticFull?: boolean;
  keepLast?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  windowEnd?: string;
  concurrency?: number;
  maxAgeHours?: number;
  paused?: boolean;
}

/** The POST /policies body from `policy create`'s options: only what was given, so the gateway's defaults apply to the rest. */
function createBody(o: CreateOptions) {
  const retention = [o.keepLast, o.daily, o.weekly, o.monthly].some((x) => x !== undefined)
    ? { keep_last: o.keepLast ?? 0, daily: o.daily ?? 0, weekly: o.weekly ?? 0, monthly: o.monthly ?? 0 }
    : undefined;
  return {
    name: o.name,
    cron: o.cron,
    timezone: o.timezone,
    repository: o.repository,
    vms: { ...(o.vm ? { names: o.vm } : {}), ...(o.vmPattern ? { name_pattern: o.vmPattern } : {}), ...(o.folder ? { folder: o.folder } : {}) },
    ...(o.fullEveryDays ? { full_every_days: o.fullEveryDays } : {}),
    ...(o.fullAfter ? { full_after_incrementals: o.fullAfter } : {}),
    ...(o.syntheticFull ? { synthetic_full: true } : {}),
    ...(retention ? { retention } : {}),
    ...(o.windowEnd ? { window_end: o.windowEnd } : {}),
    ...(o.concurrency ? { concurrency: o.concurrency } : {}),
    ...(o.maxAgeHours ? { max_age_hours: o.maxAgeHours } : {}),
    ...(o.paused ? { paused: true } : {}),
  };
}

/** policy list */
function list(policy: Command, act: Act): void {
  policy
    .command('list')
    .description('policies with their next run and last result')
    .addHelpText('after', example('sendense-ctl policy list'))
    .action(
      act(async (ctx) => {
        const ps = await unwrap(ctx.api.GET('/api/v1/policies'));
        ctx.result(ps, () =>
          ps.length
            ? table(
                [{ header: 'NAME' }, { header: 'SCHEDULE' }, { header: 'STATE' }, { header: 'NEXT', min: 19 }, { header: 'LAST' }],
                ps.map((p) => [
                  p.name,
                  `${p.cron} ${p.timezone}`,
                  p.paused ? 'paused' : 'active',
                  p.next_run_at ? localTime(p.next_run_at) : '-',
                  p.last_run?.status ?? 'never',
                ]),
                ctx.width,
              )
            : 'no policies; create one: sendense-ctl policy create --help',
        );
      }),
    );
}

/** policy show */
function show(policy: Command, act: Act): void {
  policy
    .command('show')
    .description('one policy')
    .argument('<name|id>')
    .addHelpText('after', example('sendense-ctl policy show nightly'))
    .action(
      act(async (ctx, id: string) => {
        const p = await unwrap(ctx.api.GET('/api/v1/policies/{id}', { params: { path: { id } } }));
        ctx.result(p, () => showPolicy(p));
      }),
    );
}

/** policy pause, policy resume */
function pauseResume(policy: Command, act: Act): void {
  for (const [verb, what] of [
    ['pause', 'no new runs (a run already going finishes)'],
    ['resume', 'scheduled again from now'],
  ] as const) {
    policy
      .command(verb)
      .description(what)
      .argument('<name|id>')
      .addHelpText('after', example(`sendense-ctl policy ${verb} nightly`))
      .action(
        act(async (ctx, id: string) => {
          const p = await unwrap(ctx.api.POST(verb === 'pause' ? '/api/v1/policies/{id}/pause' : '/api/v1/policies/{id}/resume', { params: { path: { id } } }));
          ctx.result(p, () => `policy ${p.name} ${p.paused ? 'paused' : `active, next run ${localTime(p.next_run_at)}`}`);
        }),
      );
  }
}

/** policy run */
function run(policy: Command, act: Act): void {
  policy
    .command('run')
    .description('run the policy now')
    .argument('<name|id>')
    .addHelpText('after', example('sendense-ctl policy run nightly', 'sendense-ctl policy history nightly --limit 1'))
    .action(
      act(async (ctx, id: string) => {
        const r = await unwrap(ctx.api.POST('/api/v1/policies/{id}/run', { params: { path: { id } } }));
        ctx.result(r, () => `run queued (job ${r.job_id}); follow it with: sendense-ctl policy history ${id} --limit 1`);
      }),
    );
}

/** policy delete */
function remove(policy: Command, act: Act): void {
  policy
    .command('delete')
    .description('delete a policy and its history (restore points stay)')
    .argument('<name|id>')
    .addHelpText('after', example('sendense-ctl policy delete nightly'))
    .action(
      act(async (ctx, id: string) => {
        const r = await unwrap(ctx.api.DELETE('/api/v1/policies/{id}', { params: { path: { id } } }));
        ctx.result(r, () => `policy ${id} deleted`);
      }),
    );
}

/** policy history */
function history(policy: Command, act: Act): void {
  policy
    .command('history')
    .description('runs of a policy, newest first: VMs, result, bytes, duration')
    .argument('<name|id>')
    .option('--limit <n>', 'at most N runs', int('--limit', 1), 20)
    .option('--offset <n>', 'skip the newest N', int('--offset'), 0)
    .addHelpText('after', example('sendense-ctl policy history nightly', 'sendense-ctl policy history nightly --json | jq ".items[0].vms"'))
    .action(
      act(async (ctx, id: string, o: { limit: number; offset: number }) => {
        const page = await unwrap(ctx.api.GET('/api/v1/policies/{id}/runs', { params: { path: { id }, query: { limit: o.limit, offset: o.offset } } }));
        ctx.result(page, () => (page.items.length ? historyTable(page.items, ctx.width) : `policy ${id} has not run yet`));
      }),
    );
}
