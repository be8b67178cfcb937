import { join } from 'node:path';
import type { Job } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import {
  CaptureAgentError,
  JobNames,
  NbdExporterError,
  type CaptureAgentClient,
  type DiskReaderSpec,
  type DiskWriterSpec,
  type NbdExportInfo,
  type NbdExporterClient,
  type RestoreDiskJobData,
  type RestoreDiskResult,
} from '@sendense/contracts';
import {
  BackupJobRepository,
  VmContextRepository,
  type BackupJobWithRepository,
  type PrismaClient,
  type SecretBox,
  type VCenter,
  type VmContext,
} from '@sendense/db';
import { WorkerStopping, type CancelRegistry } from '../backup/cancel-registry';
import type { JobEventLog } from '../backup/job-event-log';
import type { VmLocks } from '../backup/vm-lock';
import { PermanentError } from '../common/errors';
import { exportAccess, type TargetAccess } from '../common/target-access';
import type { JobHandler } from '../common/job-handler';

/** Progress of a disk restore as the job reports it (read by the gateway and Bull Board). */
export interface RestoreDiskProgress {
  phase: 'preparing' | 'planning' | 'writing' | 'cleanup' | 'done';
  bytesDone: number;
  bytesTotal: number;
  rateBytesPerSec: number;
}

/** What a disk restore reads from and writes to, checked before anything starts. */
interface RestoreTarget {
  row: BackupJobWithRepository;
  /** The repository's root directory (config.path). */
  root: string;
  ctx: VmContext & { vcenter: VCenter | null };
  vcenter: { url: string; username: string; password: string; insecure: boolean; thumbprint?: string };
  writer: DiskWriterSpec;
}

/**
 * A restore point written back into a VM's disk: the restore point is served
 * by the nbd-exporter as a read-only instant-access export (recorded with the
 * restore point, so maintenance holds its chain), the Capture Agent writes it
 * into the powered-off VM (full, or quick rollback), the export is removed.
 * Events go to job_events under the restore id; cancel arrives on CANCEL_CHANNEL.
 */
export class RestoreDiskService {
  private readonly jobs: BackupJobRepository;
  private readonly vms: VmContextRepository;

  constructor(
    prisma: PrismaClient,
    private readonly exporter: Pick<NbdExporterClient, 'createExport' | 'removeExport'>,
    private readonly capture: Pick<CaptureAgentClient, 'restoreDisk'>,
    private readonly secrets: SecretBox | null,
    private readonly nodeName: string,
    private readonly events: JobEventLog,
    private readonly locks: VmLocks,
    /** NBD_TARGET_TRANSPORT, NBD_TARGET_TLS: a socket only this host's Capture Agent may open, or a key of its own that only the agent is given. */
    private readonly sourceAccess: Partial<TargetAccess> = {},
  ) {
    this.jobs = new BackupJobRepository(prisma);
    this.vms = new VmContextRepository(prisma);
  }

  async run(d: RestoreDiskJobData, signal: AbortSignal, report: (p: RestoreDiskProgress) => Promise<void>): Promise<RestoreDiskResult> {
    const log = (level: 'info' | 'warn' | 'error', phase: string, message: string, data: Record<string, unknown> = {}) =>
      this.events.log(d.restoreId, null, level, phase, message, data);
    const t = await this.resolve(d);
    const what = `restore of backup ${d.backupId} (VM ${t.row.vmName}, disk ${t.row.diskId}) into VM ${t.ctx.vmName} disk ${d.targetDeviceKey} (${d.mode})`;
    await log('info', 'preparing', `${what} started on node ${this.nodeName}`, { requestedBy: d.requestedBy });
    await report({ phase: 'preparing', bytesDone: 0, bytesTotal: 0, rateBytesPerSec: 0 });

    // Backups of the target VM and this restore exclude each other.
    const unlock = await this.locks.acquire(d.targetVmContextId, d.restoreId);
    let exportName: string | null = null;
    try {
      const exp = await this.serveRestorePoint(d, t);
      exportName = exp.name;
      const result = await this.writeBack(d, t, exp, signal, report);
      if (result.fallbackReason)
        await log('warn', 'planning', `quick rollback fell back to a full write (${result.fallbackReason}): ${result.fallbackDetail ?? ''}`, {});
      await log(
        'info',
        'done',
        `${what} done: ${result.mode}, ${result.bytesWritten} bytes written, ${result.bytesZeroed} zeroed, ${result.extentCount} extent(s) in ${result.durationMs} ms`,
        {
          ...result,
        },
      );
      await report({ phase: 'done', bytesDone: result.bytesWritten + result.bytesZeroed, bytesTotal: result.bytesPlanned, rateBytesPerSec: 0 });
      return result;
    } catch (err) {
      await log('error', 'failed', `${what} failed: ${(err as Error).message}`);
      throw err;
    } finally {
      if (exportName)
        await this.exporter
          .removeExport(exportName)
          .catch((err: unknown) => log('warn', 'cleanup', `removing export ${exportName}: ${(err as Error).message}`));
      await unlock();
    }
  }

  /** The restore point, its repository and the target VM with its vCenter; a permanent error when this node cannot restore it. */
  private async resolve(d: RestoreDiskJobData): Promise<RestoreTarget> {
    const row = await this.jobs.findWithRepository(d.backupId);
    if (!row) throw new PermanentError(`backup ${d.backupId} does not exist`);
    if (row.status !== 'completed') throw new PermanentError(`backup ${d.backupId} is ${row.status}; only completed backups can be restored`);
    if (!row.repository) throw new PermanentError(`backup ${d.backupId} has no repository`);
    if (row.repository.storageNode !== this.nodeName)
      throw new PermanentError(`backup ${d.backupId} is on node ${row.repository.storageNode}, not ${this.nodeName}`);
    const root = (row.repository.config as { path?: string }).path;
    if (!root) throw new PermanentError(`repository ${row.repository.name} has no path`);
    const ctx = await this.vms.findWithVCenter(d.targetVmContextId);
    if (!ctx) throw new PermanentError(`VM context ${d.targetVmContextId} does not exist`);
    if (!ctx.vcenter) throw new PermanentError(`VM ${ctx.vmName} has no vCenter registered`);
    if (!this.secrets) throw new PermanentError('SENDENSE_SECRET_KEY is not set on this worker: the vCenter password cannot be read');
    const vcenter = {
      url: ctx.vcenter.url,
      username: ctx.vcenter.username,
      password: this.secrets.open(ctx.vcenter.passwordEnc),
      insecure: ctx.vcenter.insecure,
      ...(ctx.vcenter.thumbprint ? { thumbprint: ctx.vcenter.thumbprint } : {}),
    };
    const reader = (ctx.vcenter.diskReader as DiskReaderSpec | null) ?? { kind: 'vddk' };
    const writer: DiskWriterSpec =
      reader.kind === 'standin-nbd'
        ? { kind: 'standin-nbd', harnessUrl: reader.harnessUrl }
        : { kind: 'vddk', libdir: reader.libdir, transports: reader.transports };
    return { row, root, ctx, vcenter, writer };
  }

  /** The restore point as a read-only instant-access export (recorded with it, so maintenance holds its chain). */
  private serveRestorePoint(d: RestoreDiskJobData, t: RestoreTarget): Promise<NbdExportInfo> {
    return this.exporter
      .createExport({
        vmContextId: t.row.vmContextId,
        diskId: t.row.diskId,
        type: 'diskrestore',
        timestamp: new Date().toISOString().replace(/[-:]/g, '').replace('.', '').replace(/Z$/, ''),
        kind: 'qcow2',
        filePath: join(t.root, t.row.repositoryPath),
        restorePointId: t.row.id,
        // The Capture Agent is the only client: with psk it alone gets the key (in the token-protected call).
        ...exportAccess(this.sourceAccess),
      })
      .catch((err: unknown) => {
        if (err instanceof NbdExporterError && err.code !== 'INTERNAL')
          throw new PermanentError(`the nbd-exporter refuses to serve backup ${d.backupId}: ${err.message}`);
        throw err;
      });
  }

  /** The Capture Agent writes the export into the powered-off VM's disk (full, or quick rollback); progress at most every 500 ms. */
  private writeBack(
    d: RestoreDiskJobData,
    t: RestoreTarget,
    exp: NbdExportInfo,
    signal: AbortSignal,
    report: (p: RestoreDiskProgress) => Promise<void>,
  ): Promise<RestoreDiskResult> {
    let last = 0;
    return this.capture
      .restoreDisk(
        {
          restoreId: d.restoreId,
          vcenter: t.vcenter,
          vm: { moref: t.ctx.vmMoref, name: t.ctx.vmName },
          deviceKey: d.targetDeviceKey,
          sourceUri: exp.uri,
          ...(exp.tlsPsk ? { sourceTlsPsk: exp.tlsPsk } : {}),
          mode: d.mode,
          changeId: t.row.changeId,
          writer: t.writer,
        },
        {
          signal,
          onProgress: (p) => {
            const now = Date.now();
            if (now - last < 500) return;
            last = now;
            void report({ phase: p.phase, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, rateBytesPerSec: p.rateBytesPerSec });
          },
        },
      )
      .catch((err: unknown) => {
        if (err instanceof CaptureAgentError && ['VM_POWERED_ON', 'NOT_FOUND', 'INVALID_ARGUMENT', 'CANCELLED'].includes(err.code)) {
          throw new PermanentError(`[${err.code}] ${err.message}`);
        }
        throw err;
      });
  }
}

export class RestoreDiskHandler implements JobHandler {
  readonly jobName = JobNames.RestoreDisk;

  constructor(
    private readonly service: RestoreDiskService,
    private readonly cancels: CancelRegistry,
  ) {}

  async handle(job: Job): Promise<unknown> {
    const d = job.data as RestoreDiskJobData;
    // Durable like a backup's: a cancel accepted while no worker held the job ends its retry.
    const signal = await this.cancels.registerDurable(d.restoreId);
    try {
      return await this.service.run(d, signal, (p) => job.updateProgress(p as unknown as object));
    } catch (err) {
      // 'cancelled' is what the gateway's job status reads as cancelled (not failed, CLI exit 0 not 6).
      const stopping = signal.aborted && signal.reason instanceof WorkerStopping; // shutdown: retried, not cancelled
      if (!stopping && (signal.aborted || (err instanceof PermanentError && err.message.startsWith('[CANCELLED]')))) throw new UnrecoverableError('cancelled');
      if (err instanceof PermanentError) throw new UnrecoverableError(err.message);
      throw err;
    } finally {
      this.cancels.unregister(d.restoreId);
    }
  }
}
