import { TaskFailedError, TaskTimeoutError } from './errors';
import { retrieveOne } from './property-collector';
import type { VSphereSession } from './session';
import { child, childText, text, toMoRef, xsiType, type MoRef } from './xml';

export interface TaskResult {
  /** The task's result as a managed object reference, when it is one. */
  ref?: MoRef;
  /** The raw result text otherwise. */
  value?: string;
}

export interface WaitOptions {
  timeoutMs?: number;
  /** First poll interval; it doubles up to 1 s. */
  pollMs?: number;
}

/** Poll Task.info until success or error, or fail after the timeout. */
export async function waitForTask(session: VSphereSession, task: MoRef, options: WaitOptions = {}): Promise<TaskResult> {
  const timeoutMs = options.timeoutMs ?? 10 * 60 * 1000;
  const deadline = Date.now() + timeoutMs;
  let interval = options.pollMs ?? 50;
  let state = 'unknown';
  for (;;) {
    const info = (await retrieveOne(session, task, ['info']))['info'];
    state = childText(info, 'state') ?? 'unknown';
    if (state === 'success') {
      const result = child(info, 'result');
      return { ref: toMoRef(result), value: text(result) };
    }
    if (state === 'error') {
      const error = child(info, 'error');
      const fault = child(error, 'fault');
      throw new TaskFailedError(task.value, xsiType(fault) ?? 'UnknownFault', childText(error, 'localizedMessage') ?? '');
    }
    if (Date.now() >= deadline) throw new TaskTimeoutError(task.value, timeoutMs, state);
    await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - Date.now()))));
    interval = Math.min(interval * 2, 1000);
  }
}
