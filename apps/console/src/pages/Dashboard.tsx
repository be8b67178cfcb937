import { api } from '../api/client';
import type { RepositorySpace } from '../api/types';
import { Bar, DataTable, ErrorBox, Loading, Section, StatusBadge, useAsync, useInterval } from '../ui/components';
import { ago, bytes, repoPath, short, when } from '../ui/format';
import { LiveProgress } from '../ui/progress';
import { Link } from '../ui/router';
import { runsOf } from '../ui/runs';

const DAY = 24 * 3600 * 1000;

/** A repository's space as shown: measured, or unknown when the check failed. */
type SpaceShown = Omit<RepositorySpace, 'measured'> & {
  measured: RepositorySpace['measured'] | 'unknown (space check failed)';
};

/** The dashboard's data: repositories with their space, VMs and recent restore points (reloaded every 10 s). */
function useDashboard() {
  const repos = useAsync(async () => {
    const list = await api.repositories();
    return Promise.all(
      list.map(
        (r): Promise<SpaceShown> =>
          api.space(r.id).catch(
            (): SpaceShown => ({
              ...r,
              used_by_backups_bytes: 0,
              measured: 'unknown (space check failed)',
            }),
          ),
      ),
    );
  }, []);
  const data = useAsync(async () => {
    const [vms, backups] = await Promise.all([api.vms(), api.backups({ limit: 1000 })]);
    return { vms, backups };
  }, []);
  useInterval(() => data.reload(), 10_000);

  const now = Date.now();
  const runs = data.data ? runsOf(data.data.backups.items) : [];
  const running = runs.filter((r) => r.status === 'running' || r.status === 'queued');
  const failures = runs.filter((r) => r.status === 'failed' && now - new Date(r.createdAt).getTime() < DAY);
  const lastOk = new Map<string, string>();
  for (const b of data.data?.backups.items ?? []) {
    if (b.status !== 'completed' || !b.completed_at) continue;
    const prev = lastOk.get(b.vm_context_id);
    if (!prev || prev < b.completed_at) lastOk.set(b.vm_context_id, b.completed_at);
  }
  const stale = (data.data?.vms ?? []).filter((v) => {
    const t = lastOk.get(v.context_id);
    return !t || now - new Date(t).getTime() > DAY;
  });
  const truncated = data.data && data.data.backups.total > data.data.backups.items.length;
  return { repos, data, runs, running, failures, lastOk, stale, truncated };
}
type DashboardData = ReturnType<typeof useDashboard>;

export function Dashboard() {
  const d = useDashboard();
  return (
    <>
      <h1>Dashboard</h1>
      <div className="grid">
        <Repositories repos={d.repos} />
        <RunningJobs d={d} />
        <RecentFailures d={d} />
        <StaleVms d={d} />
      </div>
      <RecentJobs d={d} />
    </>
  );
}

function Repositories({ repos }: { repos: DashboardData['repos'] }) {
  return (
    <Section title="Repositories" id="repos">
      <ErrorBox error={repos.error} />
      {!repos.data ? (
        <Loading what="repositories" />
      ) : repos.data.length === 0 ? (
        <p className="muted">No repository yet. An administrator adds one under Settings.</p>
      ) : (
        <ul className="plain">
          {repos.data.map((r) => (
            <RepositoryItem key={r.id} r={r} />
          ))}
        </ul>
      )}
    </Section>
  );
}

function RepositoryItem({ r }: { r: SpaceShown }) {
  const used = r.total_size_bytes - r.available_size_bytes;
  return (
    <li className="repo">
      <div className="row-between">
        <strong>{r.name}</strong>
        <span className="muted small">
          {r.storage_node} · {repoPath(r.config) ?? r.type}
        </span>
      </div>
      <Bar value={used} total={r.total_size_bytes} label={`${r.name} used space`} />
      <div className="row-between small">
        <span>
          {bytes(used)} used of {bytes(r.total_size_bytes)} ({bytes(r.used_by_backups_bytes)} by backups)
        </span>
        <span>{bytes(r.available_size_bytes)} free</span>
      </div>
    </li>
  );
}

function RunningJobs({ d: { data, running } }: { d: DashboardData }) {
  return (
    <Section title="Running jobs" id="running">
      <ErrorBox error={data.error} />
      {!data.data ? (
        <Loading what="jobs" />
      ) : running.length === 0 ? (
        <p className="muted">Nothing is running.</p>
      ) : (
        <ul className="plain">
          {running.slice(0, 5).map((r) => (
            <li key={r.runId}>
              <Link to={`/jobs/${r.runId}`}>
                {r.vmName} · {r.types.join('/')}
              </Link>
              <LiveProgress runId={r.runId} compact onEnd={() => data.reload()} />
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function RecentFailures({ d: { data, failures } }: { d: DashboardData }) {
  return (
    <Section title="Failures in the last 24 hours" id="failures">
      {!data.data ? (
        <Loading what="failures" />
      ) : failures.length === 0 ? (
        <p className="muted">No failed backup in the last 24 hours.</p>
      ) : (
        <ul className="plain">
          {failures.map((r) => (
            <li key={r.runId}>
              <Link to={`/jobs/${r.runId}`}>{r.vmName}</Link> <span className="muted small">{when(r.createdAt)}</span>
              <p className="error small">{r.errors.join('; ') || 'failed (see the job for its log)'}</p>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function StaleVms({ d: { data, stale, lastOk, truncated } }: { d: DashboardData }) {
  return (
    <Section title="VMs without a backup in the last day" id="stale">
      {!data.data ? (
        <Loading what="VMs" />
      ) : stale.length === 0 ? (
        <p className="muted">Every VM has a backup from the last 24 hours.</p>
      ) : (
        <ul className="plain">
          {stale.map((v) => (
            <li key={v.context_id} className="row-between">
              <Link to={`/vms/${encodeURIComponent(v.context_id)}`}>{v.vm_name}</Link>
              <span className="muted small">last backup {ago(lastOk.get(v.context_id) ?? null)}</span>
            </li>
          ))}
        </ul>
      )}
      {truncated ? <p className="muted small">Judged from the newest {data.data?.backups.items.length} restore points.</p> : null}
    </Section>
  );
}

function RecentJobs({ d: { data, runs } }: { d: DashboardData }) {
  return (
    <Section title="Recent jobs" id="recent" actions={<Link to="/jobs">All jobs</Link>}>
      {!data.data ? (
        <Loading what="jobs" />
      ) : runs.length === 0 ? (
        <p className="muted">No backup has run yet. Start one from a VM's page.</p>
      ) : (
        <DataTable columns={['Run', 'VM', 'Type', 'Status', 'Started', 'Copied']}>
          {runs.slice(0, 10).map((r) => (
            <tr key={r.runId}>
              <td>
                <Link to={`/jobs/${r.runId}`}>{short(r.runId)}</Link>
              </td>
              <td>{r.vmName}</td>
              <td>{r.types.join('/')}</td>
              <td>
                <StatusBadge status={r.status} />
              </td>
              <td>{when(r.createdAt)}</td>
              <td>{bytes(r.bytes)}</td>
            </tr>
          ))}
        </DataTable>
      )}
    </Section>
  );
}
