import { Inject, Injectable } from '@nestjs/common';
import type { Job } from 'bullmq';
import type { GatewaySettings } from '@sendense/config';
import { JobNames, type BackupVmJobData } from '@sendense/contracts';
import { BackupRunRepository, VmContextRepository, type BackupRunSummary } from '@sendense/db';
import { SETTINGS } from '../common/tokens';
import { QueueRegistry } from '../queues/queue-registry.service';
import type { JobListDto, JobSummaryDto, RunState } from './dto/job.dto';

/** Queue states of a job that has not ended; active is running, the others queued (delayed: waiting to retry). */
const LIVE_STATES = ['active', 'waiting', 'delayed', 'prioritized', 'waiting-children'] as const;

interface LiveRun {
  job: Job<BackupVmJobData>;
  state: 'queued' | 'running';
}

function iso(ms: number | undefined): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

/**
 * GET /jobs: backup runs, newest first. Runs the queue still holds (queued,
 * waiting to retry, running) come first with the queue's state; then the runs
 * the restore points record, with the state their disks say. Paged with
 * limit/offset over that one list.
 */
@Injectable()
export class RunListService {
  constructor(
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly queues: QueueRegistry,
    private readonly runs: BackupRunRepository,
    private readonly vms: VmContextRepository,
  ) {}

  async list(q: { state?: RunState; vm?: string; limit: number; offset: number }): Promise<JobListDto> {
    const live = await this.liveRuns();
    const liveIds = live.map((l) => l.job.data.runId);
    const shown = await this.filterLive(live, q);
    const fromRows = q.state === 'queued' ? null : { vm: q.vm, ...(q.state ? { state: q.state } : {}), excludeRunIds: liveIds };
    const pageOfLive = shown.slice(q.offset, q.offset + q.limit);
    const restLimit = q.limit - pageOfLive.length;
    const restOffset = Math.max(0, q.offset - shown.length);
    const [recorded, liveSums] = await Promise.all([
      fromRows ? this.runs.page(fromRows, { limit: Math.max(restLimit, 1), offset: restOffset }) : { total: 0, runs: [] },
      pageOfLive.length ? this.runs.page({ runIds: pageOfLive.map((l) => l.job.data.runId) }, { limit: pageOfLive.length, offset: 0 }) : { total: 0, runs: [] },
    ]);
    const names = await this.vmNames(pageOfLive.map((l) => l.job.data.vmContextId));
    const items: JobSummaryDto[] = [
      ...pageOfLive.map((l) =>
        this.ofLive(
          l,
          liveSums.runs.find((r) => r.runId === l.job.data.runId),
          names,
        ),
      ),
      ...(restLimit > 0 ? recorded.runs.map((r) => this.ofRecorded(r)) : []),
    ];
    return { total: shown.length + recorded.total, offset: q.offset, limit: q.limit, items };
  }

  /** Jobs of every backup queue that have not ended, newest first. */
  private async liveRuns(): Promise<LiveRun[]> {
    const out: LiveRun[] = [];
    for (const queue of await this.queues.knownBackupQueues(this.settings.NODE_NAME)) {
      const active = new Set((await queue.getJobs(['active'])).map((j) => j.id));
      for (const job of (await queue.getJobs([...LIVE_STATES])) as Job<BackupVmJobData>[]) {
        // Disk restores share the backup queue; they are followed by run id (GET /jobs/{run}), not listed with backups.
        if (!job?.data?.runId || job.name !== JobNames.BackupVm) continue;
        out.push({ job, state: active.has(job.id) ? 'running' : 'queued' });
      }
    }
    return out.sort((a, b) => b.job.timestamp - a.job.timestamp);
  }

  private async filterLive(live: LiveRun[], q: { state?: RunState; vm?: string }): Promise<LiveRun[]> {
    let shown = q.state ? live.filter((l) => l.state === q.state) : live;
    if (q.vm) {
      const names = await this.vmNames(shown.map((l) => l.job.data.vmContextId));
      shown = shown.filter((l) => l.job.data.vmContextId === q.vm || names.get(l.job.data.vmContextId) === q.vm);
    }
    return shown;
  }

  private async vmNames(contextIds: string[]): Promise<Map<string, string | null>> {
    const names = new Map<string, string | null>();
    for (const id of new Set(contextIds)) names.set(id, (await this.vms.find(id))?.vmName ?? null);
    return names;
  }

  private ofLive(l: LiveRun, sums: BackupRunSummary | undefined, names: Map<string, string | null>): JobSummaryDto {
    const d = l.job.data;
    return {
      run_id: d.runId,
      kind: 'backup',
      vm_context_id: d.vmContextId,
      vm_name: sums?.vmName ?? names.get(d.vmContextId) ?? null,
      status: l.state,
      requested_type: d.requestedType,
      repository_id: d.repositoryId,
      requested_by: d.requestedBy,
      queued_at: iso(l.job.timestamp) ?? new Date(0).toISOString(),
      started_at: iso(l.job.processedOn),
      finished_at: null,
      disks: sums?.disks ?? 0,
      bytes_transferred: sums?.bytesTransferred ?? 0,
      total_bytes: sums?.totalBytes ?? 0,
      error: l.job.failedReason || null,
    };
  }

  private ofRecorded(r: BackupRunSummary): JobSummaryDto {
    return {
      run_id: r.runId,
      kind: 'backup',
      vm_context_id: r.vmContextId,
      vm_name: r.vmName,
      status: r.state,
      requested_type: r.requestedType,
      repository_id: r.repositoryId,
      requested_by: null,
      queued_at: r.createdAt.toISOString(),
      started_at: r.startedAt?.toISOString() ?? null,
      finished_at: r.completedAt?.toISOString() ?? null,
      disks: r.disks,
      bytes_transferred: r.bytesTransferred,
      total_bytes: r.totalBytes,
      error: r.errorMessage,
    };
  }
}
