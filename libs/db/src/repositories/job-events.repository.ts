import type { PrismaClient } from '../prisma-client';
import type { EventLevel, JobEvent, Prisma } from '../generated/client';

export interface NewJobEvent {
  runId: string;
  backupJobId: string | null;
  level: EventLevel;
  phase: string;
  message: string;
  data?: Prisma.InputJsonObject;
}

const MAX_MESSAGE = 60_000;

/** The append-only job_events log: what happened to a run, for operators. */
export class JobEventRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async append(e: NewJobEvent): Promise<void> {
    await this.prisma.jobEvent.create({
      data: { runId: e.runId, backupJobId: e.backupJobId, level: e.level, phase: e.phase, message: e.message.slice(0, MAX_MESSAGE), data: e.data ?? {} },
    });
  }

  /** Oldest first, at most `limit`. */
  listByRun(runId: string, limit = 200): Promise<JobEvent[]> {
    return this.prisma.jobEvent.findMany({ where: { runId }, orderBy: { id: 'asc' }, take: limit });
  }
}
