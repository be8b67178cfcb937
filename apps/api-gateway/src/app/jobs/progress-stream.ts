import type { MessageEvent } from '@nestjs/common';
import { Observable } from 'rxjs';
import type { JobStatusDto } from './dto/job.dto';

const ENDED = ['completed', 'failed', 'cancelled'];
const POLL_MS = 500;

/**
 * Server-sent events of a run: `progress` whenever status, progress or error
 * change (polled), then `end` once it has ended.
 */
export function progressEvents(runId: string, poll: () => Promise<JobStatusDto>): Observable<MessageEvent> {
  return new Observable<MessageEvent>((sub) => {
    let stopped = false;
    let last = '';
    const tick = async () => {
      if (stopped) return;
      try {
        const s = await poll();
        const body = JSON.stringify({ status: s.status, progress: s.progress, error: s.error });
        if (body !== last) {
          last = body;
          sub.next({ type: 'progress', data: { run_id: runId, status: s.status, progress: s.progress, error: s.error } });
        }
        if (ENDED.includes(s.status)) {
          sub.next({ type: 'end', data: { run_id: runId, status: s.status } });
          sub.complete();
          return;
        }
      } catch (err) {
        sub.error(err);
        return;
      }
      timer = setTimeout(tick, POLL_MS);
    };
    let timer = setTimeout(tick, 0);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  });
}
