import { useState } from 'react';
import { api } from '../api/client';
import type { Backup } from '../api/types';
import { DataTable, ErrorBox, Loading, Notice, Section, StatusBadge, useAction, useAsync, useInterval } from '../ui/components';
import { bytes, duration, short, when } from '../ui/format';
import { LiveProgress } from '../ui/progress';
import { Link } from '../ui/router';
import { ENDED, jobLink, runsOf, startedRuns } from '../ui/runs';
import { useCan } from '../ui/session';

const PAGE = 25;

type Run = ReturnType<typeof runsOf>[number];

export function JobList() {
  const [page, setPage] = useState(0);
  const [filter, setFilter] = useState<'all' | 'running' | 'failed'>('all');
  const data = useAsync(() => api.backups({ limit: 1000 }), []);
  useInterval(() => data.reload(), 10_000);
  const runs = data.data ? runsOf(data.data.items) : [];
  const known = new Set(runs.map((r) => r.runId));
  // Started from this tab and not yet writing restore points (queued).
  const queued = startedRuns().filter((r) => !known.has(r.runId) && Date.now() - new Date(r.at).getTime() < 3600_000);
  const shown = runs.filter((r) => filter === 'all' || (filter === 'running' ? !ENDED.includes(r.status) : r.status === filter));
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  return (
    <>
      <h1>Jobs</h1>
      <div className="toolbar" role="group" aria-label="Show">
        {(['all', 'running', 'failed'] as const).map((f) => (
          <button
            key={f}
            type="button"
            aria-pressed={filter === f}
            onClick={() => {
              setFilter(f);
              setPage(0);
            }}
          >
            {f}
          </button>
        ))}
      </div>
      <ErrorBox error={data.error} />
      {queued.length ? (
        <Section title="Started from this tab" id="queued">
          <ul className="plain">
            {queued.map((r) => (
              <li key={r.runId}>
                <Link to={jobLink(r.runId, r.kind)}>
                  {r.vmName} · {short(r.runId)}
                </Link>
                <LiveProgress runId={r.runId} compact onEnd={() => data.reload()} />
              </li>
            ))}
          </ul>
        </Section>
      ) : null}
      {!data.data ? (
        <Loading what="jobs" />
      ) : shown.length === 0 ? (
        <Notice>No job {filter === 'all' ? 'yet' : `is ${filter}`}.</Notice>
      ) : (
        <>
          <JobTable runs={shown.slice(page * PAGE, page * PAGE + PAGE)} onEnd={() => data.reload()} />
          <Pager page={page} pages={pages} onPage={setPage} />
        </>
      )}
    </>
  );
}

function JobTable({ runs, onEnd }: { runs: Run[]; onEnd: () => void }) {
  return (
    <DataTable columns={['Run', 'VM', 'Type', 'Status', 'Started', 'Took', 'Disks', 'Copied']} testId="job-table">
      {runs.map((r) => (
        <tr key={r.runId}>
          <td>
            <Link to={`/jobs/${r.runId}`}>{short(r.runId)}</Link>
          </td>
          <td>
            <Link to={`/vms/${encodeURIComponent(r.vmContextId)}`}>{r.vmName}</Link>
          </td>
          <td>{r.types.join('/')}</td>
          <td>
            <StatusBadge status={r.status} />
            {r.status === 'running' ? <LiveProgress runId={r.runId} compact onEnd={onEnd} /> : null}
          </td>
          <td>{when(r.createdAt)}</td>
          <td>{r.completedAt ? duration((new Date(r.completedAt).getTime() - new Date(r.createdAt).getTime()) / 1000) : '–'}</td>
          <td>{r.disks}</td>
          <td>{bytes(r.bytes)}</td>
        </tr>
      ))}
    </DataTable>
  );
}

export function Pager({ page, pages, onPage }: { page: number; pages: number; onPage: (p: number) => void }) {
  if (pages <= 1) return null;
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" onClick={() => onPage(0)} disabled={page === 0}>
        First
      </button>
      <button type="button" onClick={() => onPage(page - 1)} disabled={page === 0}>
        Previous
      </button>
      <span>
        Page {page + 1} of {pages}
      </span>
      <button type="button" onClick={() => onPage(page + 1)} disabled={page >= pages - 1}>
        Next
      </button>
      <button type="button" onClick={() => onPage(pages - 1)} disabled={page >= pages - 1}>
        Last
      </button>
    </nav>
  );
}

function useJobPage(runId: string, restore: boolean) {
  const job = useAsync(() => api.job(runId), [runId]);
  // A disk restore makes no restore points, so its VM's name comes from the VM list.
  const vms = useAsync(() => (restore ? api.vms() : Promise.resolve([])), [restore]);
  const cancel = useAction(async () => {
    const r = await api.cancelJob(runId);
    job.reload();
    return r;
  });
  const [cancelled, setCancelled] = useState<string | null>(null);
  const s = job.data;
  const live = s && !ENDED.includes(s.status) && s.status !== 'unknown';
  return { job, vms, cancel, cancelled, setCancelled, s, live };
}
type JobPageState = ReturnType<typeof useJobPage>;

/** A backup run, or (restore: opened from the disk-restore page) a disk write-back run, which makes no restore points. */
export function JobPage({ runId, restore = false }: { runId: string; restore?: boolean }) {
  const page = useJobPage(runId, restore);
  const { job, s, live } = page;
  return (
    <>
      <p className="crumbs">
        <Link to="/jobs">Jobs</Link> /
      </p>
      <h1>
        {restore ? 'Disk restore' : 'Job'} {short(runId)}
      </h1>
      <ErrorBox error={job.error} />
      {!s ? (
        <Loading what="the job" />
      ) : (
        <>
          <JobFacts s={s} vms={page.vms.data} />
          {s.error ? (
            <p className="error" data-testid="job-error">
              {s.error}
            </p>
          ) : null}
          {live ? <JobProgress runId={runId} page={page} /> : null}
          {restore ? null : <RunPoints backups={s.backups} />}
          <EventLog s={s} onRefresh={() => job.reload()} />
        </>
      )}
    </>
  );
}

type Job = Awaited<ReturnType<typeof api.job>>;

function JobFacts({ s, vms }: { s: Job; vms: { context_id: string; vm_name: string }[] | undefined }) {
  return (
    <dl className="facts">
      <dt>Status</dt>
      <dd>
        <StatusBadge status={s.status} />
      </dd>
      <dt>VM</dt>
      <dd>
        <Link to={`/vms/${encodeURIComponent(s.vm_context_id)}`}>
          {s.backups[0]?.vm_name ?? vms?.find((v) => v.context_id === s.vm_context_id)?.vm_name ?? s.vm_context_id}
        </Link>
      </dd>
      <dt>Queued</dt>
      <dd>{when(s.queued_at)}</dd>
      <dt>Started</dt>
      <dd>{when(s.started_at)}</dd>
      <dt>Finished</dt>
      <dd>{when(s.finished_at)}</dd>
      <dt>Attempts</dt>
      <dd>{s.attempts_made ?? '–'}</dd>
      <dt>Run id</dt>
      <dd className="mono">{s.run_id}</dd>
    </dl>
  );
}

function JobProgress({ runId, page: { job, cancel, cancelled, setCancelled } }: { runId: string; page: JobPageState }) {
  const may = useCan();
  return (
    <Section
      title="Progress"
      id="progress"
      actions={
        may.cancel ? (
          <button type="button" className="danger" disabled={cancel.busy} onClick={() => void cancel.run().then((r) => r && setCancelled(r.status))}>
            {cancel.busy ? 'Cancelling…' : 'Cancel job'}
          </button>
        ) : null
      }
    >
      <LiveProgress runId={runId} onEnd={() => job.reload()} />
      <ErrorBox error={cancel.error} title="Cancel refused" />
      {cancelled ? (
        <Notice>
          {cancelled === 'cancelling'
            ? 'Cancelling: the worker stops the copy and removes the snapshot and half-written restore points.'
            : 'Cancelled before it started.'}
        </Notice>
      ) : null}
    </Section>
  );
}

function EventLog({ s, onRefresh }: { s: Job; onRefresh: () => void }) {
  return (
    <Section
      title="Event log"
      id="events"
      actions={
        <button type="button" onClick={onRefresh}>
          Refresh
        </button>
      }
    >
      {s.events.length === 0 ? (
        <p className="muted">No events recorded.</p>
      ) : (
        <ol className="log" data-testid="event-log">
          {s.events.map((e, i) => (
            <li key={i} className={`log-${e.level}`}>
              <time dateTime={e.at}>{when(e.at)}</time> <span className="badge badge-muted">{e.phase}</span> <span className="log-level">{e.level}</span>{' '}
              {e.message}
            </li>
          ))}
        </ol>
      )}
    </Section>
  );
}

function RunPoints({ backups }: { backups: Backup[] }) {
  return (
    <Section title="Restore points of this run" id="run-points">
      {backups.length === 0 ? (
        <p className="muted">None yet.</p>
      ) : (
        <DataTable columns={['Disk', 'Type', 'Status', 'Copied', 'Stored', 'Note']}>
          {backups.map((b) => (
            <tr key={b.id}>
              <td>disk {b.disk_id}</td>
              <td>{b.backup_type}</td>
              <td>
                <StatusBadge status={b.status} />
              </td>
              <td>{bytes(b.bytes_transferred)}</td>
              <td>{bytes(b.allocated_bytes)}</td>
              <td className="small">
                {b.error_message ?? (b.requested_type && b.requested_type !== b.backup_type ? `asked for ${b.requested_type}: ${b.fallback_reason ?? ''}` : '')}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </Section>
  );
}
