import { useState } from 'react';
import { api } from '../api/client';
import { ApiError } from '../api/http';
import type { Backup, BackupType, Chain } from '../api/types';
import { Badge, DataTable, ErrorBox, Loading, Notice, Section, useAction, useAsync } from '../ui/components';
import { ago, bytes, short, when } from '../ui/format';
import { LiveProgress } from '../ui/progress';
import { Link } from '../ui/router';
import { rememberRun } from '../ui/runs';
import { useCan } from '../ui/session';

export function VmList() {
  const vms = useAsync(() => api.vms(), []);
  const last = useAsync(() => api.backups({ status: 'completed', limit: 1000 }), []);
  const [q, setQ] = useState('');
  const lastOf = new Map<string, string>();
  for (const b of last.data?.items ?? []) {
    const t = b.completed_at ?? b.created_at;
    if ((lastOf.get(b.vm_context_id) ?? '') < t) lastOf.set(b.vm_context_id, t);
  }
  const needle = q.trim().toLowerCase();
  const shown = (vms.data ?? []).filter(
    (v) => !needle || v.vm_name.toLowerCase().includes(needle) || v.context_id.toLowerCase().includes(needle) || v.moref.toLowerCase().includes(needle),
  );
  return (
    <>
      <h1>VMs</h1>
      <div className="toolbar">
        <label htmlFor="vm-search">Search</label>
        <input id="vm-search" type="search" placeholder="name, context id or moref" value={q} onChange={(e) => setQ(e.target.value)} />
        <span className="muted small" aria-live="polite">
          {vms.data ? `${shown.length} of ${vms.data.length}` : ''}
        </span>
      </div>
      <ErrorBox error={vms.error} />
      {!vms.data ? (
        <Loading what="VMs" />
      ) : vms.data.length === 0 ? (
        <Notice>No VM is registered. An administrator imports VMs from a vCenter under Settings.</Notice>
      ) : (
        <DataTable columns={['Name', 'Disks', 'Capacity', 'CBT', 'Last backup']} testId="vm-table">
          {shown.map((v) => (
            <tr key={v.context_id}>
              <td>
                <Link to={`/vms/${encodeURIComponent(v.context_id)}`}>{v.vm_name}</Link>
                <div className="muted small">{v.context_id}</div>
              </td>
              <td>{v.disks.length}</td>
              <td>{bytes(v.disks.reduce((s, d) => s + d.capacity_bytes, 0))}</td>
              <td>{v.cbt_enabled ? (v.cbt_state ?? 'on') : 'off'}</td>
              <td>{ago(lastOf.get(v.context_id) ?? null)}</td>
            </tr>
          ))}
        </DataTable>
      )}
    </>
  );
}

const TYPE_LETTER: Record<string, string> = { full: 'F', incremental: 'I', differential: 'D' };

function isSuspect(b: Backup): boolean {
  return !!b.suspect_reason || b.verify_status === 'failed';
}

export function VmPage({ contextId }: { contextId: string }) {
  const may = useCan();
  const vms = useAsync(() => api.vms(), []);
  const chains = useAsync(() => api.chains(contextId), [contextId]);
  const repos = useAsync(() => api.repositories(), []);
  const [selected, setSelected] = useState<string | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const vm = vms.data?.find((v) => v.context_id === contextId);

  const points = (chains.data?.chains ?? []).flatMap((c) => c.restore_points);
  const sel = points.find((p) => p.id === selected) ?? null;
  const selChain = sel ? chains.data?.chains.find((c) => c.disk_id === sel.disk_id) : undefined;

  return (
    <>
      <p className="crumbs">
        <Link to="/vms">VMs</Link> /
      </p>
      <h1>{vm?.vm_name ?? chains.data?.vm_name ?? contextId}</h1>
      <ErrorBox error={vms.error ?? chains.error} />
      {vm ? (
        <p className="muted">
          {vm.context_id} · {vm.moref} · {vm.disks.length} disks ({vm.disks.map((d) => `disk ${d.disk_id} ${bytes(d.capacity_bytes)}`).join(', ')}) · CBT{' '}
          {vm.cbt_enabled ? (vm.cbt_state ?? 'on') : 'off'}
        </p>
      ) : null}
      {may.backup ? <BackupNow contextId={contextId} repos={repos.data} onEnd={() => chains.reload()} /> : null}

      <Section title="Restore points" id="chains">
        {!chains.data ? (
          <Loading what="chains" />
        ) : chains.data.chains.length === 0 ? (
          <p className="muted">No restore point yet.</p>
        ) : (
          chains.data.chains.map((c) => (
            <Timeline
              key={c.disk_id}
              chain={c}
              selected={selected}
              onSelect={(id) => {
                setSelected(id);
                setResult(null);
              }}
            />
          ))
        )}
        <Legend />
      </Section>

      {sel && selChain ? (
        <PointPanel
          point={sel}
          chain={selChain}
          contextId={contextId}
          result={result}
          setResult={setResult}
          onChanged={() => {
            chains.reload();
          }}
          onGone={() => setSelected(null)}
        />
      ) : null}
    </>
  );
}

function BackupNow({ contextId, repos, onEnd }: { contextId: string; repos: { id: string; name: string }[] | undefined; onEnd: () => void }) {
  const [type, setType] = useState<BackupType>('incremental');
  const [repo, setRepo] = useState('');
  const [runId, setRunId] = useState<string | null>(null);
  const [conflictRun, setConflictRun] = useState<string | null>(null);
  const start = useAction(async () => {
    setConflictRun(null);
    setRunId(null);
    try {
      const s = await api.startBackup({ vm_context_id: contextId, backup_type: type, ...(repo ? { repository: repo } : {}) });
      rememberRun(s.run_id, s.vm_name);
      setRunId(s.run_id);
      return s;
    } catch (err) {
      const other = err instanceof ApiError && err.status === 409 ? (err.body as { run_id?: string } | null)?.run_id : undefined;
      if (other) setConflictRun(other);
      throw err;
    }
  });
  return (
    <Section title="Back up now" id="backup-now">
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          void start.run();
        }}
      >
        <label htmlFor="backup-type">Type</label>
        <select id="backup-type" value={type} onChange={(e) => setType(e.target.value as BackupType)}>
          <option value="full">full</option>
          <option value="incremental">incremental</option>
          <option value="differential">differential</option>
        </select>
        {(repos?.length ?? 0) > 1 ? (
          <>
            <label htmlFor="backup-repo">Repository</label>
            <select id="backup-repo" value={repo} onChange={(e) => setRepo(e.target.value)} required>
              <option value="">choose…</option>
              {(repos ?? []).map((r) => (
                <option key={r.id} value={r.name}>
                  {r.name}
                </option>
              ))}
            </select>
          </>
        ) : null}
        <button type="submit" className="primary" disabled={start.busy} data-testid="backup-now">
          {start.busy ? 'Starting…' : 'Back up now'}
        </button>
      </form>
      <p className="muted small">An incremental becomes a full when the disk has no chain yet or its change tracking was reset; the job says why.</p>
      <ErrorBox error={start.error} title="Not started" />
      {conflictRun ? (
        <p>
          <Link to={`/jobs/${conflictRun}`}>Follow the run already going</Link>
        </p>
      ) : null}
      {runId ? (
        <div>
          <p>
            Run <Link to={`/jobs/${runId}`}>{short(runId)}</Link>
          </p>
          <LiveProgress key={runId} runId={runId} onEnd={onEnd} />
        </div>
      ) : null}
    </Section>
  );
}

function Legend() {
  return (
    <p className="muted small legend">
      <Badge kind="full">F</Badge> full · <Badge kind="incremental">I</Badge> incremental · <Badge kind="differential">D</Badge> differential · ✓ verified · ⚠
      suspect
    </p>
  );
}

function Timeline({ chain, selected, onSelect }: { chain: Chain; selected: string | null; onSelect: (id: string) => void }) {
  return (
    <div className="chain" data-testid={`chain-disk-${chain.disk_id}`}>
      <h3>
        Disk {chain.disk_id}{' '}
        <span className="muted small">
          {chain.total_backups} restore points · {bytes(chain.total_size_bytes)} stored · {bytes(chain.virtual_size_bytes)} disk
        </span>
      </h3>
      <ol className="timeline" aria-label={`Restore points of disk ${chain.disk_id}, oldest first`}>
        {chain.restore_points.map((p) => {
          const suspect = isSuspect(p);
          return (
            <li key={p.id} className={`point point-${p.backup_type}${selected === p.id ? ' point-selected' : ''}${suspect ? ' point-suspect' : ''}`}>
              <button
                type="button"
                onClick={() => onSelect(p.id)}
                aria-pressed={selected === p.id}
                data-testid="restore-point"
                data-type={p.backup_type}
                aria-label={`${p.backup_type} of ${when(p.completed_at ?? p.created_at)}, ${bytes(p.allocated_bytes)}${p.verified_at ? ', verified' : ''}${suspect ? ', suspect' : ''}`}
              >
                <Badge kind={p.backup_type}>{TYPE_LETTER[p.backup_type] ?? '?'}</Badge>
                <span className="point-time">{when(p.completed_at ?? p.created_at)}</span>
                <span className="point-size">{bytes(p.allocated_bytes)}</span>
                <span className="point-flags">
                  {p.verified_at && !suspect ? <span title={`verified ${when(p.verified_at)}`}>✓ verified</span> : null}
                  {suspect ? (
                    <span className="warn" title={p.suspect_reason ?? p.verify_status ?? 'suspect'}>
                      ⚠ suspect
                    </span>
                  ) : null}
                </span>
              </button>
            </li>
          );
        })}
      </ol>
    </div>
  );
}

/** Verify, delete (after a confirmation) and consolidate one restore point. */
function usePointActions({ point, chain, contextId, setResult, onChanged, onGone }: PointProps) {
  const verify = useAction(async () => {
    const r = await api.verify(point.id);
    setResult(
      r.ok
        ? 'Verified: the image checks clean and its content matches the checksum taken at backup time.'
        : `Verification found problems: ${JSON.stringify(r)}`,
    );
    onChanged();
  });
  const del = useAction(async () => {
    await api.deleteBackup(point.id);
    setResult(null);
    onGone();
    onChanged();
  });
  const isLatest = chain.latest_backup_id === point.id;
  const consolidate = useAction(async () => {
    const r = await api.consolidate({ vm_context_id: contextId, disk_id: chain.disk_id, ...(isLatest ? {} : { up_to_backup_id: point.id }) });
    setResult(`Consolidated: ${r.removedIds?.length ?? 0} restore points merged into ${short(r.survivorId)}; every remaining point reads as before.`);
    onGone();
    onChanged();
  });
  const [confirmDelete, setConfirmDelete] = useState(false);
  const err = verify.error ?? del.error ?? consolidate.error;
  return { verify, del, consolidate, isLatest, confirmDelete, setConfirmDelete, err };
}

type PointProps = {
  point: Backup;
  chain: Chain;
  contextId: string;
  result: string | null;
  setResult: (s: string | null) => void;
  onChanged: () => void;
  onGone: () => void;
};

function PointPanel(props: PointProps) {
  const { point, result } = props;
  const a = usePointActions(props);
  return (
    <Section title={`Restore point ${short(point.id)} (disk ${point.disk_id})`} id="point">
      <PointFacts point={point} />
      <PointActions point={point} a={a} />
      <ErrorBox error={a.err} title="Refused" />
      {result ? <Notice kind="ok">{result}</Notice> : null}
    </Section>
  );
}

function PointFacts({ point }: { point: Backup }) {
  return (
    <dl className="facts">
      <dt>Type</dt>
      <dd>
        {point.backup_type}
        {point.requested_type && point.requested_type !== point.backup_type
          ? ` (asked for ${point.requested_type}: ${point.fallback_reason ?? 'no reason given'})`
          : ''}
      </dd>
      <dt>Taken</dt>
      <dd>{when(point.completed_at ?? point.created_at)}</dd>
      <dt>Stored</dt>
      <dd>{bytes(point.allocated_bytes)}</dd>
      <dt>Copied</dt>
      <dd>{bytes(point.bytes_transferred)}</dd>
      <dt>Verified</dt>
      <dd>{point.verified_at ? `${point.verify_status ?? 'yes'} at ${when(point.verified_at)}` : 'not yet'}</dd>
      <dt>Suspect</dt>
      <dd>{isSuspect(point) ? (point.suspect_reason ?? point.verify_status ?? 'yes') : 'no'}</dd>
      <dt>Id</dt>
      <dd className="mono">{point.id}</dd>
    </dl>
  );
}

function PointActions({
  point,
  a: { verify, del, consolidate, isLatest, confirmDelete, setConfirmDelete },
}: {
  point: Backup;
  a: ReturnType<typeof usePointActions>;
}) {
  const may = useCan();
  return (
    <div className="toolbar">
      <Link to={`/restore?backup=${encodeURIComponent(point.id)}`} className="button">
        Restore files…
      </Link>
      <Link to={`/disk-restore?backup=${encodeURIComponent(point.id)}`} className="button">
        Restore the disk…
      </Link>
      {may.verify ? (
        <button type="button" onClick={() => void verify.run()} disabled={verify.busy}>
          {verify.busy ? 'Verifying…' : 'Verify'}
        </button>
      ) : null}
      {may.consolidate ? (
        <button
          type="button"
          onClick={() => void consolidate.run()}
          disabled={consolidate.busy}
          title={isLatest ? 'Merge all but the newest restore point of this disk' : 'Merge the full and everything up to this restore point'}
        >
          {consolidate.busy ? 'Consolidating…' : isLatest ? 'Consolidate chain' : 'Consolidate up to here'}
        </button>
      ) : null}
      {may.delete ? (
        confirmDelete ? (
          <>
            <button type="button" className="danger" onClick={() => void del.run().then(() => setConfirmDelete(false))} disabled={del.busy}>
              {del.busy ? 'Deleting…' : 'Really delete'}
            </button>
            <button type="button" onClick={() => setConfirmDelete(false)}>
              Keep it
            </button>
          </>
        ) : (
          <button type="button" className="danger" onClick={() => setConfirmDelete(true)}>
            Delete…
          </button>
        )
      ) : null}
    </div>
  );
}
