import { BadRequestException, ConflictException, HttpException, Injectable, NotFoundException, UnprocessableEntityException } from '@nestjs/common';
import { QueueNames, type JobDataByName, type JobName } from '@sendense/contracts';
import { BackupRepositoryRepository } from '@sendense/db';
import { QueueRegistry } from '../queues/queue-registry.service';
import { RestoreProxyService } from '../restore/restore.service';

/** A maintenance job's failure "[CODE] message" as the HTTP answer it deserves. */
export function httpErrorOfJobFailure(err: unknown): HttpException {
  const message = err instanceof Error ? err.message : String(err);
  const m = /^\[([A-Z_]+)\] (.*)$/s.exec(message);
  const code = m?.[1];
  const text = m?.[2] ?? message;
  switch (code) {
    case 'RESTORE_POINT_NOT_FOUND':
      return new NotFoundException({ code, message: text });
    case 'DEPENDENT_RESTORE_POINTS':
    case 'RESTORE_POINT_BUSY':
    case 'CONSOLIDATION_REFUSED':
    case 'INVALID_STATE':
      return new ConflictException({ code, message: text });
    case 'INVALID_REQUEST':
      return new BadRequestException({ code, message: text });
    default:
      if (/timed out|Job wait/i.test(text)) {
        return new HttpException({ message: `the storage node did not answer in time: ${text}` }, 504);
      }
      return new UnprocessableEntityException({ ...(code ? { code } : {}), message: text });
  }
}

/**
 * Runs a maintenance job (delete, verify, consolidate, retention) on the
 * storage node of a repository and waits for its answer, so the API can say
 * at once whether it worked.
 */
@Injectable()
export class MaintenanceDispatcher {
  constructor(
    private readonly repositories: BackupRepositoryRepository,
    private readonly queues: QueueRegistry,
    private readonly restore: RestoreProxyService,
  ) {}

  async run<N extends JobName>(repositoryId: string | null, name: N, data: JobDataByName[N], jobId: string, timeoutMs: number): Promise<unknown> {
    if (!repositoryId) throw new ConflictException('this backup has no repository');
    const repo = await this.repositories.find(repositoryId);
    if (!repo) throw new ConflictException(`repository ${repositoryId} no longer exists`);
    // Forget mounts the restore-service no longer has, so they do not block this.
    await this.restore.list().catch(() => undefined);
    try {
      return await this.queues.runAndWait(QueueNames.maintenance(repo.storageNode), name, data, jobId, timeoutMs);
    } catch (err) {
      throw httpErrorOfJobFailure(err);
    }
  }
}
