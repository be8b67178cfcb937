import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { REDIS } from '../common/tokens';

const RUN_KEY = (runId: string) => `sendense:run:${runId}`;
const RUN_TTL_S = 30 * 24 * 3600;

/** Where the queue job of a backup run lives (kept in Redis for 30 days). */
export interface RunRef {
  queue: string;
  jobId: string;
  vmContextId: string;
  repositoryId: string;
}

/** Run id -> queue job, so that status and cancel find a run's job by its run id. */
@Injectable()
export class RunRegistry {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  async save(runId: string, ref: RunRef): Promise<void> {
    await this.redis.set(RUN_KEY(runId), JSON.stringify(ref), 'EX', RUN_TTL_S);
  }

  async get(runId: string): Promise<RunRef> {
    const raw = await this.redis.get(RUN_KEY(runId));
    if (!raw) throw new NotFoundException(`no job with run id ${runId} (or it is older than 30 days)`);
    return JSON.parse(raw) as RunRef;
  }
}
