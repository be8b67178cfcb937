import type { BackupVmJobData } from '@sendense/contracts';
import {
  BackupChainRepository,
  BackupJobRepository,
  BackupRepositoryRepository,
  VmContextRepository,
  VmDiskRepository,
  type PrismaClient,
  type SecretBox,
} from '@sendense/db';
import { exposesLocalFiles } from '@sendense/storage';
import { CancelledError, PermanentError } from '../common/errors';
import type { CaptureAgentPort } from '../common/ports';
import { RepositoryRegistry } from '../repositories/repository-registry';
import { JobEventLog } from './job-event-log';
import type { VmLocks } from './vm-lock';
import { cleanUpInterrupted, type InterruptedRunDeps } from './interrupted-runs';
import { cleanUpRun } from './phases/cleanup.phase';
import { commitDisks, finishRun, flushTargets } from './phases/commit.phase';
import { copyDisks } from './phases/copy.phase';
import { planDisks } from './phases/plan.phase';
import { chooseBases, SnapshotSession } from './phases/prepare.phase';
import { createRestorePoints, exportTargets } from './phases/targets.phase';
import type { BackupControl, BackupDeps, BackupRun, BackupRunResult, Exporter } from './run-context';

export type { BackupControl, BackupRunResult, DiskOutcome } from './run-context';

/**
 * One VM backup: every disk gets a restore point (full, incremental on the
 * previous one, or differential on the full). Nothing points at a restore
 * point until it is committed; on any failure or cancel the half-written
 * restore points, the NBD exports and the snapshot are removed and the
 * previous chain is untouched. The phases live in ./phases, in the order they
 * run: prepare (bases, snapshot), plan, targets, copy, commit, clean up.
 */
export class BackupService {
  private readonly d: BackupDeps;

  constructor(
    prisma: PrismaClient,
    private readonly repositories: RepositoryRegistry,
    exporter: Exporter,
    capture: CaptureAgentPort,
    private readonly secrets: SecretBox | null,
    private readonly nodeName: string,
    events: JobEventLog,
    private readonly locks: VmLocks,
    /** targetTls, targetTransport: NBD_TARGET_TLS, NBD_TARGET_TRANSPORT resolved (see exportAccess). */
    options: { cbtAuditSamples?: number; targetTls?: 'psk' | 'none'; targetTransport?: 'tcp' | 'unix' } = {},
  ) {
    this.d = {
      vms: new VmContextRepository(prisma),
      disks: new VmDiskRepository(prisma),
      jobs: new BackupJobRepository(prisma),
      chains: new BackupChainRepository(prisma),
      repositoryRows: new BackupRepositoryRepository(prisma),
      events,
      exporter,
      capture,
      nodeName,
      options,
    };
  }

  get deps(): InterruptedRunDeps {
    return { jobs: this.d.jobs, repositories: this.repositories, exporter: this.d.exporter, events: this.d.events };
  }

  async run(data: BackupVmJobData, ctl: BackupControl): Promise<BackupRunResult> {
    const run = await this.open(data, ctl);
    const unlock = await this.locks.acquire(data.vmContextId, data.runId);
    try {
      // Rows of an earlier attempt of this run belong to a worker that died.
      await cleanUpInterrupted(this.deps, { runId: data.runId }, async () => false);
      if (ctl.signal.aborted) {
        await this.d.events.log(data.runId, null, 'warn', 'cancelled', `${run.vm}: cancelled while no worker was running it; not started again`, {});
        throw new CancelledError('cancelled');
      }
      return await this.runLocked(run);
    } finally {
      await unlock();
    }
  }

  /** The VM, its vCenter and the repository; a permanent error when the job cannot run on this node. */
  private async open(data: BackupVmJobData, ctl: BackupControl): Promise<BackupRun> {
    const ctx = await this.d.vms.findForBackup(data.vmContextId);
    if (!ctx) throw new PermanentError(`VM context ${data.vmContextId} does not exist (was the VM removed?)`);
    const vm = `VM ${ctx.vmName} (${ctx.contextId})`;
    await this.d.events.log(data.runId, null, 'info', 'preparing', `${data.requestedType} backup of ${vm} started on node ${this.nodeName}`, {});
    const repoRow = await this.d.repositoryRows.find(data.repositoryId);
    if (!repoRow) throw new PermanentError(`repository ${data.repositoryId} does not exist`);
    if (!repoRow.enabled) throw new PermanentError(`repository ${repoRow.name} is disabled`);
    if (repoRow.storageNode !== this.nodeName) {
      throw new PermanentError(`repository ${repoRow.name} is served by node ${repoRow.storageNode}, not by this worker's node ${this.nodeName}`);
    }
    const repo = await this.repositories.get(repoRow);
    if (!exposesLocalFiles(repo)) {
      throw new PermanentError(
        `repository ${repoRow.name} (${repoRow.repositoryType}) cannot expose an image file to the nbd-exporter; backups need such a repository`,
      );
    }
    if (!ctx.vcenter) throw new PermanentError(`${vm} has no vCenter registered`);
    if (!this.secrets) throw new PermanentError('SENDENSE_SECRET_KEY is not set on this worker: the vCenter password cannot be read');
    return { data, ctl, ctx, vm, repoRow, repo, bases: new Map(), plans: [] };
  }

  /** The phases in order, under the VM lock; clean-up on any failure, the snapshot removed in every case. */
  private async runLocked(run: BackupRun): Promise<BackupRunResult> {
    const d = this.d;
    if (!run.ctx.vcenter || !this.secrets) throw new PermanentError(`${run.vm} has no usable vCenter credentials`);
    const snapshot = new SnapshotSession(d, run, this.secrets.open(run.ctx.vcenter.passwordEnc));
    await chooseBases(d, run);
    run.ctl.progress({ phase: 'snapshot', bytesDone: 0, bytesTotal: 0, bytesSkippedZero: 0, rateBytesPerSec: 0, disks: [] });
    try {
      const prepared = await snapshot.open();
      if (run.ctl.signal.aborted) throw new CancelledError('cancelled');
      await planDisks(d, run, prepared.disks);
      await createRestorePoints(d, run);
      const results = await copyDisks(d, run, prepared, await exportTargets(d, run));
      // The data is out of the snapshot: remove it now, while the restore
      // points are committed, so it lives on the VM no longer than needed.
      snapshot.release();
      await flushTargets(d, run);
      await commitDisks(d, run, results);
      return await finishRun(d, run, prepared, results);
    } catch (err) {
      throw await cleanUpRun(d, run, err);
    } finally {
      await snapshot.close();
    }
  }
}
