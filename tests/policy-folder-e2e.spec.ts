import { join } from 'node:path';
import { run, waitFor } from '@sendense/process';
import { startFaultBed, type FaultBed } from './support/faults';
import { ROOT } from './support/system';

/**
 * Policies by vCenter folder (issue 17), on the built apps with MariaDB,
 * Redis and the stand-in (govmomi simulator folders): a policy created with
 * `sendense-ctl policy create --folder prod/web` backs up the VM in the
 * folder (imported at run time: it was never imported) and not the one
 * outside; a VM moved into a sub-folder afterwards is picked up by the next
 * run; an unknown folder fails the run naming the vCenter, the folder and
 * what exists. The 'policies' queue is one per install; the system's own
 * QUEUE_PREFIX keeps other tests' workers on this Redis from taking its runs.
 */

const IN = 'fold-web-vm';
const OUT = 'fold-outside-vm';
const LATE = 'fold-late-vm';
const MINUTE = 60_000;
const CLI = join(ROOT, 'dist/apps/cli/main.js');

interface Run {
  id: string;
  status: string;
  message: string | null;
  vms: { vm_name: string; vm_context_id: string; run_id: string | null; type: string; status: string; error: string | null }[];
}

jest.setTimeout(10 * MINUTE);

describe('policy by vCenter folder', () => {
  let bed: FaultBed;

  const cli = async (args: string[]) => {
    const r = await run('node', [CLI, ...args], {
      env: { ...bed.sys.env, SENDENSE_API_URL: bed.sys.api, SENDENSE_API_KEY: bed.sys.adminKey, HOME: bed.work },
      okExitCodes: [0, 1, 2, 3, 4, 5, 6],
      timeoutMs: 60_000,
    });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  };

  /** Run the policy now and wait for the run to end. */
  const runNow = async (policy: string): Promise<Run> => {
    const before = (await bed.sys.call<{ items: Run[] }>('GET', `/api/v1/policies/${policy}/runs?limit=50`)).body.items.map((r) => r.id);
    expect((await bed.sys.call('POST', `/api/v1/policies/${policy}/run`)).status).toBe(202);
    let done: Run | undefined;
    await waitFor(
      async () => {
        const items = (await bed.sys.call<{ items: Run[] }>('GET', `/api/v1/policies/${policy}/runs?limit=50`)).body.items;
        done = items.find((r) => !before.includes(r.id) && r.status !== 'running');
        return done !== undefined;
      },
      { timeoutMs: 5 * MINUTE, intervalMs: 1000, message: `a run of policy ${policy}` },
    );
    return done!;
  };

  const backupsOf = async (vmName: string) => {
    const ctx = await bed.sys.db.prisma.vmContext.findMany({ where: { vmName } });
    return bed.sys.db.prisma.backupJob.findMany({ where: { vmContextId: { in: ctx.map((c) => c.contextId) }, status: 'completed' } });
  };

  beforeAll(async () => {
    const disks = [{ sizeMiB: 16, content: { type: 'random' as const, percent: 20, seed: 7 } }];
    bed = await startFaultBed({
      vms: [
        { name: IN, folder: 'prod/web', disks },
        { name: OUT, folder: 'prod/db', disks },
        { name: LATE, disks },
      ],
      // Only the VM outside the folder is imported: the folder's VMs must be found (and imported) by the policy run.
      importVms: [OUT],
    });
  }, 5 * MINUTE);

  afterAll(async () => {
    await bed?.stop();
  }, MINUTE);

  it('refuses a folder path with control characters, "..", or over 512 characters', async () => {
    for (const folder of ['prod/\u0007web', 'prod/../db', 'x'.repeat(513), 'prod//web']) {
      const r = await bed.sys.call<{ message: unknown }>('POST', '/api/v1/policies', {
        name: 'bad-folder',
        cron: '0 3 * * *',
        repository: 'local',
        vms: { folder },
      });
      expect([r.status, folder]).toEqual([400, folder]);
    }
  });

  it('backs up the VM in the folder (imported at run time) and not the one outside; a VM moved into a sub-folder is picked up by the next run', async () => {
    const made = await cli(['policy', 'create', '--name', 'by-folder', '--cron', '0 3 * * *', '--repository', 'local', '--folder', 'prod/web', '--paused']);
    expect([made.code, made.stderr]).toEqual([0, '']);
    const policy = (await bed.sys.call<{ id: string; vms: { folder?: string } }>('GET', '/api/v1/policies/by-folder')).body;
    expect(policy.vms.folder).toBe('prod/web');
    expect((await cli(['policy', 'show', 'by-folder'])).stdout).toMatch(/folder prod\/web/);
    expect(await bed.sys.db.prisma.vmContext.count({ where: { vmName: IN } })).toBe(0);

    const first = await runNow(policy.id);
    expect(first.status).toBe('completed');
    expect(first.vms.map((v) => [v.vm_name, v.status, v.type])).toEqual([[IN, 'completed', 'full']]);
    expect(first.message).toMatch(new RegExp(`imported from folder prod/web: ${IN}`));
    // Imported as vcenter import would: the context with its disk rows.
    const ctx = (await bed.sys.db.prisma.vmContext.findMany({ where: { vmName: IN }, include: { disks: true } }))[0]!;
    expect(ctx.disks.map((d) => Number(d.capacityBytes))).toEqual([16 * 1024 * 1024]);
    expect((await backupsOf(IN)).length).toBe(1);
    expect(await backupsOf(OUT)).toEqual([]);

    await bed.standIn.harness!.moveToFolder(LATE, 'prod/web/new');
    const second = await runNow(policy.id);
    expect(second.status).toBe('completed');
    expect(Object.fromEntries(second.vms.map((v) => [v.vm_name, v.status]))).toEqual({ [IN]: 'completed', [LATE]: 'completed' });
    expect(second.vms.find((v) => v.vm_name === IN)!.type).toBe('incremental');
    expect(second.message).toMatch(new RegExp(`imported from folder prod/web: ${LATE}`));
    expect((await backupsOf(LATE)).length).toBe(1);
    expect(await backupsOf(OUT)).toEqual([]);
  });

  it('an unknown folder fails the run, naming the vCenter, the folder and what exists there', async () => {
    const p = await bed.sys.call<{ id: string }>('POST', '/api/v1/policies', {
      name: 'no-such-folder',
      cron: '0 3 * * *',
      repository: 'local',
      vms: { folder: 'prod/app' },
      paused: true,
    });
    expect(p.status).toBe(201);
    const r = await runNow(p.body.id);
    expect(r.status).toBe('failed');
    expect(r.vms).toEqual([]);
    expect(r.message).toMatch(
      /folder prod\/app was not found on any registered vCenter \(vCenter standin: folder path prod\/app: no folder app in prod; there are: db, web\)/,
    );
  });
});
