import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { JobIds, JobNames, QueueNames, RUN_REF_TTL_S, runRefKey, type PolicyRunVm, type RunPolicyJobData, type RunRef } from '@sendense/contracts';
import type { BackupPolicyRecord, BackupPolicyRepository, BackupRepository, BackupRepositoryRepository, PolicyRunRecord } from '@sendense/db';
import type { WorkerMetrics } from '@sendense/metrics';
import type { RetentionResult } from '@sendense/storage';
import type { Producers } from '../common/producers';
import type { WebhookNotifier } from '../webhooks/webhook-notifier';
import type { BackupRunResult } from '../backup/backup.service';
import { chooseType, selectVms, unmatchedNames, windowDeadline } from './policy-rules';
import type { FolderResolver } from './folder-resolver';

const DAY_MS = 86_400_000;

/** The slot a scheduler job stands for: its id is `repeat:<scheduler>:<millis>`. */
export function slotOf(job: Pick<Job, 'id' | 'timestamp'>): Date {
  const m = /:(\d+)$/.exec(job.id ?? '');
  return new Date(m ? Number(m[1]) : job.timestamp);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One run of a policy: resolve the VMs now, pick each one's type, queue the
 * VM backups on the repository's node (at most `concurrency` at once, none
 * started after the window's end), wait for them, consolidate where a
 * synthetic full is due, then apply the policy's retention to each VM it
 * backed up. The run and each VM's outcome are written to policy_runs as it goes.
 */
export class PolicyRunner {
  private readonly log = new Logger('PolicyRunner');

  constructor(
    private readonly policies: BackupPolicyRepository,
    private readonly repositories: BackupRepositoryRepository,
    private readonly producers: Producers,
    private readonly redis: Redis,
    private readonly notifier: WebhookNotifier,
    private readonly metrics: WorkerMetrics,
    private readonly folders: Pick<FolderResolver, 'resolve'>,
  ) {}

  async run(job: Job<RunPolicyJobData>): Promise<PolicyRunRecord | { skipped: string }> {
    const policy = await this.policies.find(job.data.policyId);
    if (!policy) return { skipped: `policy ${job.data.policyId} no longer exists` };
    // Pausing removes the scheduler; a slot job already taken before that is not started either.
    if (policy.paused && job.data.trigger === 'schedule') return { skipped: `policy ${policy.name} is paused` };
    const slot = job.data.trigger === 'schedule' ? slotOf(job) : new Date();
    const { run, resumed } = await this.policies.startRun({
      policyId: policy.id,
      queueJobId: job.id ?? randomUUID(),
      trigger: job.data.trigger,
      scheduledFor: slot,
    });
    if (resumed && run.status !== 'running') return run;
    this.log.log(`policy ${policy.name}: run ${run.id} (${job.data.trigger}, slot ${slot.toISOString()})${resumed ? ', resumed' : ''}`);
    try {
      const done = await this.execute(policy, run, slot);
      this.metrics.policyRuns.inc({ result: done.status });
      if (done.status === 'failed' || done.status === 'partial') {
        await this.notifier.notify('policy.run', {
          policy: { id: policy.id, name: policy.name },
          run: { id: done.id, status: done.status, message: done.message, vms: done.vms },
        });
      }
      return done;
    } catch (err) {
      const failed = await this.policies.updateRun(run.id, { status: 'failed', message: message(err), finished: true });
      this.metrics.policyRuns.inc({ result: 'failed' });
      await this.notifier.notify('policy.run', { policy: { id: policy.id, name: policy.name }, run: { id: run.id, status: 'failed', message: message(err) } });
      return failed;
    }
  }

  private async execute(policy: BackupPolicyRecord, run: PolicyRunRecord, slot: Date): Promise<PolicyRunRecord> {
    const repo = await this.repositories.find(policy.repositoryId);
    if (!repo) throw new Error(`repository ${policy.repositoryId} of policy ${policy.name} does not exist`);
    if (!repo.enabled) throw new Error(`repository ${repo.name} of policy ${policy.name} is disabled`);
    const notes: string[] = [];
    const { vms, synthesize } = await this.planVms(policy, repo.id, notes);
    await this.policies.updateRun(run.id, { vms, message: notes.join('; ') || null });
    // Each VM's outcome is written as it comes, one write at a time.
    let chain = Promise.resolve();
    const save = () => {
      chain = chain.then(async () => {
        await this.policies.updateRun(run.id, { vms });
      });
      return chain;
    };
    const deadline = windowDeadline(slot, policy.windowEnd, policy.timezone);
    const queue = [...vms];
    const lanes = Array.from({ length: Math.max(1, Math.min(policy.concurrency, queue.length)) }, async () => {
      for (let v = queue.shift(); v; v = queue.shift())
        await this.backUpVm(policy, repo, v, { deadline, synthesize: synthesize.get(v.vmContextId) ?? false, save });
    });
    await Promise.all(lanes);
    await chain;
    if (policy.retention) await this.applyRetention(policy, policy.retention, repo, vms, notes);
    return this.finish(run.id, vms, notes);
  }

  /** The VMs of this run (the folder resolved first: VMs in it never imported are imported now), each with its type and why. */
  private async planVms(policy: BackupPolicyRecord, repositoryId: string, notes: string[]): Promise<{ vms: PolicyRunVm[]; synthesize: Map<string, boolean> }> {
    let members: Set<string> | undefined;
    if (policy.selector.folder) {
      const f = await this.folders.resolve(policy.selector.folder);
      members = f.contextIds;
      if (f.imported.length) notes.push(`imported from folder ${policy.selector.folder}: ${f.imported.join(', ')}`);
      notes.push(...f.unreachable);
    }
    const registered = await this.policies.vms();
    const selected = selectVms(registered, policy.selector, members);
    const missing = unmatchedNames(registered, policy.selector);
    if (missing.length) notes.push(`no registered VM named ${missing.join(', ')}`);
    const now = new Date();
    const vms: PolicyRunVm[] = [];
    const synthesize = new Map<string, boolean>();
    for (const vm of selected) {
      const state = await this.policies.vmBackupState(vm.contextId, repositoryId);
      const d = chooseType(policy, state, now);
      synthesize.set(vm.contextId, d.synthesize);
      vms.push({
        vmContextId: vm.contextId,
        vmName: vm.vmName,
        runId: null,
        type: d.type,
        reason: d.reason,
        status: 'pending',
        bytes: 0,
        durationMs: null,
        error: null,
      });
    }
    return { vms, synthesize };
  }

  /** One VM: skipped after the window, else its backup queued (or the one already queued followed), waited for, consolidated when a synthetic full is due. */
  private async backUpVm(
    policy: BackupPolicyRecord,
    repo: BackupRepository,
    v: PolicyRunVm,
    o: { deadline: Date | null; synthesize: boolean; save: () => Promise<void> },
  ): Promise<void> {
    if (o.deadline && Date.now() > o.deadline.getTime()) {
      Object.assign(v, { status: 'skipped', error: `the start window ended at ${policy.windowEnd} (${policy.timezone})` });
      return o.save();
    }
    const started = Date.now();
    const backupQueue = QueueNames.backup(repo.storageNode);
    const jobId = JobIds.backupVm(v.vmContextId);
    const job = await this.producers.addFresh(
      backupQueue,
      JobNames.BackupVm,
      { runId: randomUUID(), vmContextId: v.vmContextId, requestedType: v.type, repositoryId: repo.id, requestedBy: `policy:${policy.name}` },
      jobId,
    );
    // A backup of this VM already queued or running (by hand, or another policy): this run follows that one.
    v.runId = (job.data as { runId: string }).runId;
    const ref: RunRef = { queue: backupQueue, jobId, vmContextId: v.vmContextId, repositoryId: repo.id };
    await this.redis.set(runRefKey(v.runId), JSON.stringify(ref), 'EX', RUN_REF_TTL_S).catch(() => undefined);
    v.status = 'running';
    await o.save();
    try {
      const result = (await this.producers.waitFor(job, DAY_MS)) as BackupRunResult | undefined;
      const disks = result?.disks ?? [];
      v.bytes = disks.reduce((s, d) => s + d.bytesTransferred, 0);
      if (disks.length) v.type = disks.some((d) => d.type === 'full') ? 'full' : disks[0].type;
      if (o.synthesize && v.type === 'incremental') {
        const maintenance = QueueNames.maintenance(repo.storageNode);
        for (const d of disks) {
          const cj = await this.producers.addFresh(
            maintenance,
            JobNames.ConsolidateChain,
            { vmContextId: v.vmContextId, diskId: d.diskId, repositoryId: repo.id, requestedBy: `policy:${policy.name}` },
            JobIds.consolidate(v.vmContextId, d.diskId),
          );
          await this.producers.waitFor(cj, DAY_MS);
        }
        v.reason += '; chain consolidated';
      }
      v.status = 'completed';
    } catch (err) {
      Object.assign(v, { status: 'failed', error: message(err) });
    }
    v.durationMs = Date.now() - started;
    return o.save();
  }

  /** The policy's retention, applied to each VM it backed up (a failure is a note of the run, not a failed VM). */
  private async applyRetention(
    policy: BackupPolicyRecord,
    retention: NonNullable<BackupPolicyRecord['retention']>,
    repo: BackupRepository,
    vms: PolicyRunVm[],
    notes: string[],
  ): Promise<void> {
    const maintenance = QueueNames.maintenance(repo.storageNode);
    for (const v of vms.filter((x) => x.status === 'completed')) {
      try {
        const rj = await this.producers.addFresh(
          maintenance,
          JobNames.ApplyRetention,
          { repositoryId: repo.id, vmContextId: v.vmContextId, dryRun: false, policy: retention, requestedBy: `policy:${policy.name}` },
          JobIds.retention(repo.id, v.vmContextId),
        );
        const r = (await this.producers.waitFor(rj, DAY_MS)) as Partial<RetentionResult> | undefined;
        const removed = (r?.delete?.length ?? 0) + (r?.merge ?? []).reduce((n, m) => n + m.removedIds.length, 0);
        v.reason += `; retention applied (${removed} restore point(s) removed, ${r?.keep?.length ?? 0} kept)`;
      } catch (err) {
        notes.push(`retention of ${v.vmName}: ${message(err)}`);
      }
    }
  }

  /** The run's status from its VMs' outcomes, and its summary first among the notes. */
  private finish(runId: string, vms: PolicyRunVm[], notes: string[]): Promise<PolicyRunRecord> {
    const count = (s: PolicyRunVm['status']) => vms.filter((v) => v.status === s).length;
    const failed = count('failed');
    const skipped = count('skipped');
    const completed = count('completed');
    const status =
      vms.length === 0 ? 'completed' : failed === vms.length ? 'failed' : skipped === vms.length ? 'skipped' : failed || skipped ? 'partial' : 'completed';
    if (vms.length === 0) notes.push('no VM matched the policy');
    notes.unshift(`${completed} of ${vms.length} VM(s) backed up${failed ? `, ${failed} failed` : ''}${skipped ? `, ${skipped} not started (window)` : ''}`);
    return this.policies.updateRun(runId, { vms, status, message: notes.join('; '), finished: true });
  }
}
