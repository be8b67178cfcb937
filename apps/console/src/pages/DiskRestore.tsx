import { useEffect, useState } from 'react';
import { api } from '../api/client';
import type { DiskExport, ImageFormat, RestoreDisk } from '../api/types';
import { Badge, DataTable, ErrorBox, Loading, Notice, Section, useAction, useAsync } from '../ui/components';
import { ago, bytes, short, when } from '../ui/format';
import { PointSelects, usePointChoice } from '../ui/point-choice';
import { Link, navigate } from '../ui/router';
import { jobLink, rememberRun } from '../ui/runs';
import { saveBlob } from '../ui/save';
import { useCan } from '../ui/session';

/**
 * Whole-disk restores of one restore point: instant access over NBD (read-only
 * or writable through a temporary overlay), the disk as one image file, and
 * writing it back into a powered-off VM's disk (quick rollback or full),
 * followed on the job page. Exports are listed for every role; starting,
 * ending, downloading and writing back need an operator or admin key.
 */

const EXT: Record<ImageFormat, string> = {
  raw: 'img',
  qcow2: 'qcow2',
  vmdk: 'vmdk',
};

type Loaded<T> = {
  data: T | undefined;
  error: Error | undefined;
  reload: () => void;
};
type ChainsOf = Awaited<ReturnType<typeof api.chains>>;
type RestorePoint = ChainsOf['chains'][number]['restore_points'][number];

/** The page's state: the VMs, the chosen VM's chains, the chosen restore point, the exports. */
function useDiskRestore(backupId: string | null) {
  const choice = usePointChoice(backupId);
  const exports = useAsync(() => api.exports(), []);
  const chosen = choice.chains.data?.chains.flatMap((c) => c.restore_points).find((p) => p.id === choice.point) ?? null;
  return { ...choice, choice, exports, chosen };
}

export function DiskRestorePage({ backupId }: { backupId: string | null }) {
  const may = useCan();
  const s = useDiskRestore(backupId);
  const { vms, chains, preset, exports, chosen } = s;
  return (
    <>
      <h1>Disk restore</h1>
      <Section title="Restore point" id="disk-point">
        <PointChooser s={s} />
        <ChosenPoint chosen={chosen} />
        <ErrorBox error={vms.error ?? chains.error ?? preset.error} />
      </Section>
      {!may.exportDisk ? (
        <Notice>Your key may list instant-access exports; starting one, downloading an image or writing a disk back needs an operator or admin key.</Notice>
      ) : null}
      {may.exportDisk ? <StartExport backupId={chosen?.id ?? null} onStarted={() => exports.reload()} /> : null}
      <ExportList exports={exports} canEnd={may.exportDisk} />
      {may.exportDisk ? <ImageDownload backupId={chosen?.id ?? null} /> : null}
      {may.writeBack && chosen ? <WriteBack point={chosen} vms={vms.data ?? []} /> : null}
    </>
  );
}

function PointChooser({ s }: { s: ReturnType<typeof useDiskRestore> }) {
  return (
    <div className="toolbar">
      <PointSelects choice={s.choice} ids={{ vm: 'disk-vm', point: 'disk-point-select' }} size={(p) => p.virtual_size_bytes} />
    </div>
  );
}

function ChosenPoint({ chosen }: { chosen: RestorePoint | null }) {
  return chosen ? (
    <p className="muted small" data-testid="disk-point-chosen">
      {chosen.vm_name} · disk {chosen.disk_id} · {chosen.backup_type} of {when(chosen.completed_at ?? chosen.created_at)} · disk size{' '}
      {bytes(chosen.virtual_size_bytes)} · <span className="mono">{chosen.id}</span>
      {chosen.suspect_reason ? (
        <>
          {' '}
          · <Badge kind="bad">suspect</Badge> {chosen.suspect_reason}
        </>
      ) : null}
    </p>
  ) : (
    <p className="muted small">Choose a VM and one of its restore points; any point of a chain stands for the whole chain up to it.</p>
  );
}

function StartExport({ backupId, onStarted }: { backupId: string | null; onStarted: () => void }) {
  const [writable, setWritable] = useState(false);
  const [idleMin, setIdleMin] = useState(60);
  const [made, setMade] = useState<DiskExport | null>(null);
  const start = useAction(async () => {
    if (!backupId) return;
    const e = await api.startExport({
      backup_id: backupId,
      writable,
      idle_timeout_seconds: Math.max(1, Math.round(idleMin * 60)),
    });
    setMade(e);
    onStarted();
  });
  return (
    <Section title="Instant access (NBD)" id="instant">
      <ExportForm
        writable={writable}
        setWritable={setWritable}
        idleMin={idleMin}
        setIdleMin={setIdleMin}
        busy={start.busy}
        disabled={!backupId || start.busy}
        onSubmit={() => void start.run()}
      />
      <p className="muted small">
        Any NBD client reads the export (nbdcopy, qemu-img, nbdinfo, or a hypervisor's NBD disk). The restore point cannot be deleted or merged while the export
        lives.
      </p>
      <ErrorBox error={start.error} title="Cannot export" />
      {made ? <ExportCreated made={made} /> : null}
    </Section>
  );
}

function ExportForm({
  writable,
  setWritable,
  idleMin,
  setIdleMin,
  busy,
  disabled,
  onSubmit,
}: {
  writable: boolean;
  setWritable: (v: boolean) => void;
  idleMin: number;
  setIdleMin: (v: number) => void;
  busy: boolean;
  disabled: boolean;
  onSubmit: () => void;
}) {
  return (
    <form
      className="toolbar"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit();
      }}
    >
      <label>
        <input type="checkbox" checked={writable} onChange={(e) => setWritable(e.target.checked)} data-testid="export-writable" /> writable (writes go to a
        temporary overlay, discarded when the export ends)
      </label>
      <label htmlFor="export-idle">ends after</label>
      <input
        id="export-idle"
        type="number"
        min={1}
        max={10080}
        value={idleMin}
        onChange={(e) => setIdleMin(Number(e.target.value) || 60)}
        style={{ width: '6em' }}
      />
      <span>min without a client</span>
      <button type="submit" className="primary" disabled={disabled} data-testid="start-export">
        {busy ? 'Starting…' : 'Start export'}
      </button>
    </form>
  );
}

function ExportCreated({ made }: { made: DiskExport }) {
  return (
    <div data-testid="export-created" data-name={made.name}>
      <Notice kind="ok">Export started.</Notice>
      <dl className="facts">
        <dt>URI</dt>
        <dd className="mono" data-testid="export-uri">
          {made.uri}
        </dd>
        <dt>Size</dt>
        <dd data-testid="export-size" data-bytes={made.size_bytes}>
          {bytes(made.size_bytes)}
        </dd>
        <dt>Access</dt>
        <dd>{made.writable ? 'writable (temporary overlay)' : 'read-only'}</dd>
        <dt>Ends</dt>
        <dd>
          {made.expires_at ? `${when(made.expires_at)} unless a client connects` : 'when ended'}
          {made.idle_timeout_seconds ? `; after ${Math.round(made.idle_timeout_seconds / 60)} min idle` : ''}
        </dd>
        <dt>TLS</dt>
        <dd>{made.tls ? `required (${made.tls_mode ?? 'tls'})` : 'none: plain NBD, anyone who can reach the port reads it'}</dd>
        {made.tls_psk ? (
          <>
            <dt>TLS-PSK identity</dt>
            <dd className="mono">{made.tls_psk.identity}</dd>
            <dt>TLS-PSK key</dt>
            <dd className="mono" data-testid="export-psk">
              {made.tls_psk.key}
            </dd>
          </>
        ) : null}
      </dl>
      {made.tls_psk ? (
        <Notice kind="warn">
          The key is shown only now. Give clients a file holding{' '}
          <code>
            {made.tls_psk.identity}:{'<key>'}
          </code>{' '}
          and add <code>?tls-psk-file=FILE</code> to the URI.
        </Notice>
      ) : null}
      <p className="small">
        Read it, e.g.:{' '}
        <code>
          nbdcopy &apos;{made.uri}
          {made.tls_psk ? '?tls-psk-file=psk.txt' : ''}&apos; disk.img
        </code>
      </p>
    </div>
  );
}

function ExportList({ exports, canEnd }: { exports: Loaded<DiskExport[]>; canEnd: boolean }) {
  const end = useAction(async (name: string) => {
    await api.endExport(name);
    exports.reload();
  });
  return (
    <Section
      title="Instant-access exports"
      id="exports"
      actions={
        <button type="button" onClick={() => exports.reload()}>
          Refresh
        </button>
      }
    >
      <ErrorBox error={exports.error ?? end.error} />
      {!exports.data ? (
        <Loading what="exports" />
      ) : exports.data.length === 0 ? (
        <p className="muted" data-testid="no-exports">
          No export is running.
        </p>
      ) : (
        <DataTable columns={['URI', 'Restore point', 'Size', 'Access', 'Started', 'Last client', 'Ends', 'Actions']} testId="export-table">
          {exports.data.map((e) => (
            <ExportRow key={e.name} e={e} canEnd={canEnd} busy={end.busy} onEnd={() => void end.run(e.name)} />
          ))}
        </DataTable>
      )}
    </Section>
  );
}

function ExportRow({ e, canEnd, busy, onEnd }: { e: DiskExport; canEnd: boolean; busy: boolean; onEnd: () => void }) {
  return (
    <tr data-name={e.name}>
      <td className="mono small">{e.uri}</td>
      <td className="mono">{short(e.backup_id)}</td>
      <td className="num">{bytes(e.size_bytes)}</td>
      <td>
        {e.writable ? 'writable' : 'read-only'}
        {e.tls ? ` · ${e.tls_mode ?? 'tls'}` : ''}
      </td>
      <td>{when(e.created_at)}</td>
      <td>{ago(e.last_active_at)}</td>
      <td>{e.expires_at ? when(e.expires_at) : '–'}</td>
      <td>
        {canEnd ? (
          <button type="button" className="danger" onClick={onEnd} disabled={busy} aria-label={`End export ${e.name}`}>
            End
          </button>
        ) : null}
      </td>
    </tr>
  );
}

function ImageDownload({ backupId }: { backupId: string | null }) {
  const [format, setFormat] = useState<ImageFormat>('qcow2');
  const [note, setNote] = useState<string | null>(null);
  const download = useAction(async () => {
    if (!backupId) return;
    const name = `${backupId}.${EXT[format]}`;
    setNote(`Converting and downloading ${name}… (qcow2 and vmdk are converted on the storage node first)`);
    const blob = await api.image(backupId, format);
    saveBlob(blob, name);
    setNote(`Downloaded ${name} (${bytes(blob.size)}).`);
  });
  return (
    <Section title="Download the disk image" id="image">
      <div className="toolbar">
        <label htmlFor="image-format">Format</label>
        <select id="image-format" value={format} onChange={(e) => setFormat(e.target.value as ImageFormat)}>
          <option value="qcow2">qcow2 (self-contained, sparse)</option>
          <option value="vmdk">vmdk (streamOptimized, for vSphere)</option>
          <option value="raw">raw</option>
        </select>
        <button type="button" className="primary" disabled={!backupId || download.busy} onClick={() => void download.run()} data-testid="download-image">
          {download.busy ? 'Downloading…' : 'Download image'}
        </button>
      </div>
      <p className="muted small">
        The browser holds the whole image until it is saved: for big disks use <code>sendense-ctl restore image</code> or curl with the key in the{' '}
        <code>X-API-Key</code> header
        {backupId ? (
          <>
            {' '}
            (
            <code>
              GET /api/v1/backup/{backupId}/image?format={format}
            </code>
            )
          </>
        ) : null}
        .
      </p>
      <ErrorBox error={download.error} title="Download failed" />
      {note && !download.error ? <Notice kind={download.busy ? 'info' : 'ok'}>{note}</Notice> : null}
    </Section>
  );
}

type WritePoint = {
  id: string;
  vm_context_id: string;
  vm_name: string;
  disk_id: number;
};
type WriteVm = {
  context_id: string;
  vm_name: string;
  disks: {
    disk_id: number;
    device_key: number;
    label: string | null;
    capacity_bytes: number;
  }[];
};

function WriteBack({ point, vms }: { point: WritePoint; vms: WriteVm[] }) {
  const [mode, setMode] = useState<RestoreDisk['mode']>('quick');
  const [target, setTarget] = useState(point.vm_context_id);
  const [disk, setDisk] = useState('');
  const [sure, setSure] = useState(false);
  useEffect(() => {
    setTarget(point.vm_context_id);
    setDisk('');
    setSure(false);
  }, [point.id, point.vm_context_id]);
  const targetVm = vms.find((v) => v.context_id === target);
  const start = useAction(async () => {
    const body: RestoreDisk = { backup_id: point.id, mode };
    if (target !== point.vm_context_id) body.target_vm_context_id = target;
    if (disk) body.target_device_key = Number(disk);
    const r = await api.restoreDisk(body);
    rememberRun(r.run_id, `${r.target_vm_name} (disk restore)`, 'restore');
    navigate(jobLink(r.run_id, 'restore'));
  });
  return (
    <Section title="Write back to a VM" id="writeback">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void start.run();
        }}
      >
        <ModeChoice mode={mode} setMode={setMode} />
        <TargetChoice point={point} vms={vms} target={target} setTarget={setTarget} disk={disk} setDisk={setDisk} />
        <label className="small">
          <input type="checkbox" checked={sure} onChange={(e) => setSure(e.target.checked)} data-testid="restore-confirm" /> I understand this overwrites the
          disk of {targetVm?.vm_name ?? target}; the VM must be powered off (the run is refused otherwise, with the reason).
        </label>
        <div className="toolbar">
          <button type="submit" className="danger" disabled={!sure || start.busy} data-testid="restore-disk">
            {start.busy ? 'Starting…' : 'Write the disk back'}
          </button>
        </div>
      </form>
      <p className="muted small">
        Progress, cancel and the event log are on the job page it opens. <Link to="/jobs">Jobs</Link>
      </p>
      <ErrorBox error={start.error} title="Cannot start the restore" />
    </Section>
  );
}

function ModeChoice({ mode, setMode }: { mode: RestoreDisk['mode']; setMode: (m: RestoreDisk['mode']) => void }) {
  return (
    <fieldset className="toolbar">
      <legend>Mode</legend>
      <label>
        <input type="radio" name="restore-mode" value="quick" checked={mode === 'quick'} onChange={() => setMode('quick')} /> quick rollback: only the areas
        changed since the restore point (a full write when vCenter no longer knows its changeId)
      </label>
      <label>
        <input type="radio" name="restore-mode" value="full" checked={mode === 'full'} onChange={() => setMode('full')} data-testid="mode-full" /> full: every
        allocated extent, the rest zeroed
      </label>
    </fieldset>
  );
}

function TargetChoice({
  point,
  vms,
  target,
  setTarget,
  disk,
  setDisk,
}: {
  point: WritePoint;
  vms: WriteVm[];
  target: string;
  setTarget: (v: string) => void;
  disk: string;
  setDisk: (v: string) => void;
}) {
  const targetVm = vms.find((v) => v.context_id === target);
  return (
    <div className="toolbar">
      <label htmlFor="restore-target-vm">Target VM</label>
      <select
        id="restore-target-vm"
        value={target}
        onChange={(e) => {
          setTarget(e.target.value);
          setDisk('');
        }}
      >
        {vms.map((v) => (
          <option key={v.context_id} value={v.context_id}>
            {v.vm_name}
            {v.context_id === point.vm_context_id ? ' (its own VM)' : ''}
          </option>
        ))}
      </select>
      <label htmlFor="restore-target-disk">Disk</label>
      <select id="restore-target-disk" value={disk} onChange={(e) => setDisk(e.target.value)}>
        <option value="">{target === point.vm_context_id ? `disk ${point.disk_id} (the restore point's own)` : 'the same disk number'}</option>
        {(targetVm?.disks ?? []).map((d) => (
          <option key={d.device_key} value={String(d.device_key)}>
            disk {d.disk_id} · {d.label ?? `key ${d.device_key}`} · {bytes(d.capacity_bytes)}
          </option>
        ))}
      </select>
    </div>
  );
}
