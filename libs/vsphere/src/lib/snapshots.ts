import { VSphereError } from './errors';
import type { VSphereSession } from './session';
import { waitForTask, type WaitOptions } from './tasks';
import { el, moRefEl, toMoRef, type MoRef } from './xml';

export interface CreateSnapshotOptions extends WaitOptions {
  name: string;
  description?: string;
  /** Quiesce the guest file systems via VMware Tools (default false). */
  quiesce?: boolean;
}

/** CreateSnapshot_Task without memory; resolves to the new snapshot. */
export async function createSnapshot(session: VSphereSession, vm: MoRef, options: CreateSnapshotOptions): Promise<MoRef> {
  const rv = await session.call(
    'CreateSnapshot_Task',
    moRefEl('_this', vm) +
      el('name', options.name) +
      el('description', options.description ?? '') +
      el('memory', false) +
      el('quiesce', options.quiesce ?? false),
  );
  const task = toMoRef(rv);
  if (!task) throw new VSphereError('CreateSnapshot_Task returned no task');
  const result = await waitForTask(session, task, options);
  if (!result.ref) throw new VSphereError(`CreateSnapshot_Task ${task.value} returned no snapshot`);
  return result.ref;
}

export interface RemoveSnapshotOptions extends WaitOptions {
  removeChildren?: boolean;
  /** Consolidate the disks afterwards (default true, as the vSphere client does). */
  consolidate?: boolean;
}

export async function removeSnapshot(session: VSphereSession, snapshot: MoRef, options: RemoveSnapshotOptions = {}): Promise<void> {
  const rv = await session.call(
    'RemoveSnapshot_Task',
    moRefEl('_this', snapshot) + el('removeChildren', options.removeChildren ?? false) + el('consolidate', options.consolidate ?? true),
  );
  const task = toMoRef(rv);
  if (!task) throw new VSphereError('RemoveSnapshot_Task returned no task');
  await waitForTask(session, task, options);
}

/** ReconfigVM_Task with config.changeTrackingEnabled = true. */
export async function enableChangeTracking(session: VSphereSession, vm: MoRef, options: WaitOptions = {}): Promise<void> {
  const rv = await session.call('ReconfigVM_Task', moRefEl('_this', vm) + `<spec>${el('changeTrackingEnabled', true)}</spec>`);
  const task = toMoRef(rv);
  if (!task) throw new VSphereError('ReconfigVM_Task returned no task');
  await waitForTask(session, task, options);
}

/** PowerOffVM_Task (a hard power-off, as a disk restore needs) or PowerOnVM_Task; resolves when the task ends. */
export async function setPower(session: VSphereSession, vm: MoRef, on: boolean, options: WaitOptions = {}): Promise<void> {
  const method = on ? 'PowerOnVM_Task' : 'PowerOffVM_Task';
  const rv = await session.call(method, moRefEl('_this', vm));
  const task = toMoRef(rv);
  if (!task) throw new VSphereError(`${method} returned no task`);
  await waitForTask(session, task, options);
}
