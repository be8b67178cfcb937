import { useEffect, useState } from 'react';
import { api } from '../api/client';
import type { Backup } from '../api/types';
import { useAsync } from './components';
import { bytes, when } from './format';

/**
 * Choosing a restore point (file restore, disk restore): the VMs, the chosen
 * VM's chains, the chosen point; a backup id from the page's address picks
 * its VM and point once it is loaded.
 */
export function usePointChoice(backupId: string | null) {
  const vms = useAsync(() => api.vms(), []);
  const preset = useAsync(() => (backupId ? api.backup(backupId) : Promise.resolve(null)), [backupId]);
  const [vm, setVm] = useState('');
  const [point, setPoint] = useState(backupId ?? '');
  useEffect(() => {
    if (preset.data) {
      setVm(preset.data.vm_context_id);
      setPoint(preset.data.id);
    }
  }, [preset.data]);
  const chains = useAsync(() => (vm ? api.chains(vm) : Promise.resolve(null)), [vm]);
  return { vms, preset, vm, setVm, point, setPoint, chains };
}
export type PointChoice = ReturnType<typeof usePointChoice>;

/** The VM and restore-point selects (newest point first in each disk's group); ids name the two controls for their labels. */
export function PointSelects({
  choice: { vms, vm, setVm, point, setPoint, chains },
  ids,
  size,
}: {
  choice: PointChoice;
  ids: { vm: string; point: string };
  /** The size shown for each point. */
  size: (p: Backup) => number | null;
}) {
  return (
    <>
      <label htmlFor={ids.vm}>VM</label>
      <select
        id={ids.vm}
        value={vm}
        onChange={(e) => {
          setVm(e.target.value);
          setPoint('');
        }}
      >
        <option value="">choose…</option>
        {(vms.data ?? []).map((v) => (
          <option key={v.context_id} value={v.context_id}>
            {v.vm_name}
          </option>
        ))}
      </select>
      <label htmlFor={ids.point}>Restore point</label>
      <select id={ids.point} value={point} onChange={(e) => setPoint(e.target.value)} disabled={!chains.data}>
        <option value="">choose…</option>
        {(chains.data?.chains ?? []).map((c) => (
          <optgroup key={c.disk_id} label={`disk ${c.disk_id}`}>
            {[...c.restore_points].reverse().map((p) => (
              <option key={p.id} value={p.id}>
                disk {c.disk_id} · {p.backup_type} · {when(p.completed_at ?? p.created_at)} · {bytes(size(p))}
              </option>
            ))}
          </optgroup>
        ))}
      </select>
    </>
  );
}
