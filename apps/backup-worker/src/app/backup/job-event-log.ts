import { JobEventRepository, type EventLevel, type Prisma, type PrismaClient } from '@sendense/db';
import { Logger } from '@nestjs/common';

/** The job event log (job_events): what happened to a run, for operators. */
export class JobEventLog {
  private readonly logger = new Logger('JobEvents');

  private readonly events: JobEventRepository;

  constructor(prisma: PrismaClient) {
    this.events = new JobEventRepository(prisma);
  }

  async log(runId: string, backupJobId: string | null, level: EventLevel, phase: string, message: string, data: Record<string, unknown>) {
    const line = `[${runId}] ${phase}: ${message}`;
    if (level === 'error') this.logger.error(line);
    else if (level === 'warn') this.logger.warn(line);
    else this.logger.log(line);
    await this.events
      .append({ runId, backupJobId, level, phase, message, data: data as Prisma.InputJsonObject })
      .catch((err: unknown) => this.logger.error(`could not record event: ${String(err)}`));
  }
}
