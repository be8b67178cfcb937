import { useState, type FormEvent } from 'react';
import { api } from '../api/client';
import type { CreatedApiKey, ImportedVm, Role } from '../api/types';
import { Bar, DataTable, ErrorBox, Loading, Notice, Section, useAction, useAsync } from '../ui/components';
import { ago, bytes, repoPath, when } from '../ui/format';

export function Settings() {
  return (
    <>
      <h1>Settings</h1>
      <VCenters />
      <Repositories />
      <Retention />
      <ApiKeys />
    </>
  );
}

function VCenters() {
  const list = useAsync(() => api.vcenters(), []);
  const [imported, setImported] = useState<{ vcenter: string; vms: ImportedVm[] } | null>(null);
  const [names, setNames] = useState<Record<string, string>>({});
  const imp = useAction(async (id: string, vcenter: string) => {
    const only = (names[id] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const vms = await api.importVms(id, only);
    setImported({ vcenter, vms });
  });
  return (
    <Section title="vCenters" id="vcenters">
      <ErrorBox error={list.error ?? imp.error} />
      {!list.data ? (
        <Loading what="vCenters" />
      ) : list.data.length === 0 ? (
        <p className="muted">None registered.</p>
      ) : (
        <DataTable columns={['Name', 'URL', 'User', 'TLS', 'Import VMs']}>
          {list.data.map((v) => (
            <tr key={v.id}>
              <td>{v.name}</td>
              <td className="mono small">{v.url}</td>
              <td>{v.username}</td>
              <td>{v.insecure ? 'any certificate (lab)' : v.thumbprint ? 'pinned thumbprint' : 'verified'}</td>
              <td>
                <div className="toolbar">
                  <label className="sr-only" htmlFor={`imp-${v.id}`}>
                    VM names to import from {v.name}
                  </label>
                  <input
                    id={`imp-${v.id}`}
                    placeholder="all, or names separated by commas"
                    value={names[v.id] ?? ''}
                    onChange={(e) => setNames({ ...names, [v.id]: e.target.value })}
                  />
                  <button type="button" onClick={() => void imp.run(v.id, v.name)} disabled={imp.busy}>
                    {imp.busy ? 'Importing…' : 'Import'}
                  </button>
                </div>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      {imported ? (
        <Notice kind="ok">
          Imported from {imported.vcenter}: {imported.vms.map((v) => `${v.vm_name} (${v.disks} disks)`).join(', ') || 'no VM'}.
        </Notice>
      ) : null}
      <VCenterForm onAdded={() => list.reload()} />
    </Section>
  );
}

function VCenterForm({ onAdded }: { onAdded: () => void }) {
  const [f, setF] = useState({ name: '', url: '', username: '', password: '', insecure: false, thumbprint: '' });
  const add = useAction(async (e: FormEvent) => {
    e.preventDefault();
    await api.addVCenter({
      name: f.name,
      url: f.url,
      username: f.username,
      password: f.password,
      insecure: f.insecure,
      ...(f.thumbprint ? { thumbprint: f.thumbprint } : {}),
    });
    setF({ name: '', url: '', username: '', password: '', insecure: false, thumbprint: '' });
    onAdded();
  });
  return (
    <form className="form" onSubmit={(e) => void add.run(e)} aria-labelledby="vc-add-h">
      <h3 id="vc-add-h">Add a vCenter</h3>
      <label>
        Name <input required value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} />
      </label>
      <label>
        URL <input required type="url" placeholder="https://vcenter.example.com/sdk" value={f.url} onChange={(e) => setF({ ...f, url: e.target.value })} />
      </label>
      <label>
        User <input required autoComplete="off" value={f.username} onChange={(e) => setF({ ...f, username: e.target.value })} />
      </label>
      <label>
        Password <input required type="password" autoComplete="new-password" value={f.password} onChange={(e) => setF({ ...f, password: e.target.value })} />
      </label>
      <label>
        Certificate thumbprint (optional) <input value={f.thumbprint} onChange={(e) => setF({ ...f, thumbprint: e.target.value })} />
      </label>
      <label className="check">
        <input type="checkbox" checked={f.insecure} onChange={(e) => setF({ ...f, insecure: e.target.checked })} /> Accept any certificate (lab use only)
      </label>
      <button type="submit" className="primary" disabled={add.busy}>
        {add.busy ? 'Checking the login…' : 'Add vCenter'}
      </button>
      <ErrorBox error={add.error} title="Not added" />
    </form>
  );
}

function Repositories() {
  const list = useAsync(async () => Promise.all((await api.repositories()).map((r) => api.space(r.id))), []);
  return (
    <Section
      title="Repositories"
      id="repositories"
      actions={
        <button type="button" onClick={() => list.reload()}>
          Measure space
        </button>
      }
    >
      <ErrorBox error={list.error} />
      {!list.data ? (
        <Loading what="repositories" />
      ) : list.data.length === 0 ? (
        <p className="muted">None yet.</p>
      ) : (
        <DataTable columns={['Name', 'Node', 'Path', 'Space', 'By backups', 'Measured']}>
          {list.data.map((r) => (
            <tr key={r.id}>
              <td>
                {r.name}
                {r.enabled ? '' : ' (disabled)'}
              </td>
              <td>{r.storage_node}</td>
              <td className="mono small">{repoPath(r.config) ?? r.type}</td>
              <td>
                <Bar value={r.total_size_bytes - r.available_size_bytes} total={r.total_size_bytes} label={`${r.name} used space`} />
                <span className="small">
                  {bytes(r.available_size_bytes)} free of {bytes(r.total_size_bytes)}
                </span>
              </td>
              <td>{bytes(r.used_by_backups_bytes)}</td>
              <td className="small">
                {r.measured} ({ago(r.updated_at)})
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      <RepositoryForm onAdded={() => list.reload()} />
    </Section>
  );
}

function RepositoryForm({ onAdded }: { onAdded: () => void }) {
  const [f, setF] = useState({ name: '', path: '', storage_node: '' });
  const add = useAction(async (e: FormEvent) => {
    e.preventDefault();
    await api.createRepository({ name: f.name, type: 'local', path: f.path, ...(f.storage_node ? { storage_node: f.storage_node } : {}) });
    setF({ name: '', path: '', storage_node: '' });
    onAdded();
  });
  return (
    <form className="form" onSubmit={(e) => void add.run(e)} aria-labelledby="repo-add-h">
      <h3 id="repo-add-h">Add a local repository</h3>
      <label>
        Name <input required value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} />
      </label>
      <label>
        Directory (absolute) <input required placeholder="/var/lib/sendense/backups" value={f.path} onChange={(e) => setF({ ...f, path: e.target.value })} />
      </label>
      <label>
        Storage node (default: this gateway's){' '}
        <input value={f.storage_node} pattern="[A-Za-z0-9._-]{1,63}" onChange={(e) => setF({ ...f, storage_node: e.target.value })} />
      </label>
      <button type="submit" className="primary" disabled={add.busy}>
        Add repository
      </button>
      <ErrorBox error={add.error} title="Not added" />
    </form>
  );
}

function Retention() {
  const policies = useAsync(() => api.policies(), []);
  const repos = useAsync(() => api.repositories(), []);
  const vms = useAsync(() => api.vms(), []);
  const [outcome, setOutcome] = useState<string | null>(null);
  const apply = useAction(async (repository: string, vmContextId: string | null, dryRun: boolean) => {
    const r = await api.applyRetention({ repository, ...(vmContextId ? { vm_context_id: vmContextId } : {}), dry_run: dryRun });
    const count = (k: string) => (Array.isArray(r[k]) ? (r[k] as unknown[]).length : 0);
    setOutcome(
      `${dryRun ? 'Would keep' : 'Kept'} ${count('keep')}, ${dryRun ? 'would delete' : 'deleted'} ${count('delete')}, ${dryRun ? 'would merge' : 'merged'} ${count('merge')}${count('errors') ? `, ${count('errors')} errors: ${JSON.stringify(r['errors'])}` : ''}.`,
    );
  });
  const repoName = (id: string) => repos.data?.find((r) => r.id === id)?.name ?? id;
  const vmName = (id: string | null) => (id ? (vms.data?.find((v) => v.context_id === id)?.vm_name ?? id) : 'whole repository');
  return (
    <Section title="Retention policies" id="retention">
      <ErrorBox error={policies.error ?? apply.error} />
      {!policies.data ? (
        <Loading what="policies" />
      ) : policies.data.length === 0 ? (
        <p className="muted">No policy: every restore point is kept.</p>
      ) : (
        <PolicyTable policies={policies.data} apply={apply} repoName={repoName} vmName={vmName} />
      )}
      {outcome ? <Notice kind="ok">{outcome}</Notice> : null}
      <PolicyForm repos={repos.data ?? []} vms={vms.data ?? []} onSaved={() => policies.reload()} />
    </Section>
  );
}

type Policies = Awaited<ReturnType<typeof api.policies>>;

function PolicyTable({
  policies,
  apply,
  repoName,
  vmName,
}: {
  policies: Policies;
  apply: { run: (repository: string, vmContextId: string | null, dryRun: boolean) => Promise<unknown>; busy: boolean };
  repoName: (id: string) => string;
  vmName: (id: string | null) => string;
}) {
  return (
    <DataTable columns={['Repository', 'Scope', 'Keep last', 'Daily', 'Weekly', 'Monthly', 'Apply']}>
      {policies.map((p) => (
        <tr key={p.id}>
          <td>{repoName(p.repository_id)}</td>
          <td>{vmName(p.vm_context_id)}</td>
          <td>{p.keep_last}</td>
          <td>{p.daily}</td>
          <td>{p.weekly}</td>
          <td>{p.monthly}</td>
          <td>
            <button type="button" onClick={() => void apply.run(p.repository_id, p.vm_context_id, true)} disabled={apply.busy}>
              Dry run
            </button>{' '}
            <button type="button" className="danger" onClick={() => void apply.run(p.repository_id, p.vm_context_id, false)} disabled={apply.busy}>
              Apply
            </button>
          </td>
        </tr>
      ))}
    </DataTable>
  );
}

function PolicyForm({ repos, vms, onSaved }: { repos: { id: string; name: string }[]; vms: { context_id: string; vm_name: string }[]; onSaved: () => void }) {
  const [f, setF] = useState({ repository: '', vm_context_id: '', keep_last: 7, daily: 0, weekly: 0, monthly: 0 });
  const save = useAction(async (e: FormEvent) => {
    e.preventDefault();
    await api.setPolicy({
      repository: f.repository,
      ...(f.vm_context_id ? { vm_context_id: f.vm_context_id } : {}),
      keep_last: f.keep_last,
      daily: f.daily,
      weekly: f.weekly,
      monthly: f.monthly,
    });
    onSaved();
  });
  const num = (k: 'keep_last' | 'daily' | 'weekly' | 'monthly', label: string) => (
    <label>
      {label} <input type="number" min={0} max={10000} value={f[k]} onChange={(e) => setF({ ...f, [k]: Number(e.target.value) })} />
    </label>
  );
  return (
    <form className="form" onSubmit={(e) => void save.run(e)} aria-labelledby="ret-h">
      <h3 id="ret-h">Set a policy</h3>
      <label>
        Repository{' '}
        <select required value={f.repository} onChange={(e) => setF({ ...f, repository: e.target.value })}>
          <option value="">choose…</option>
          {repos.map((r) => (
            <option key={r.id} value={r.name}>
              {r.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        VM{' '}
        <select value={f.vm_context_id} onChange={(e) => setF({ ...f, vm_context_id: e.target.value })}>
          <option value="">whole repository</option>
          {vms.map((v) => (
            <option key={v.context_id} value={v.context_id}>
              {v.vm_name}
            </option>
          ))}
        </select>
      </label>
      {num('keep_last', 'Keep last')}
      {num('daily', 'Daily')}
      {num('weekly', 'Weekly')}
      {num('monthly', 'Monthly')}
      <p className="muted small">Pruning merges restore points into their successors instead of breaking a chain.</p>
      <button type="submit" className="primary" disabled={save.busy}>
        Save policy
      </button>
      <ErrorBox error={save.error} title="Not saved" />
    </form>
  );
}

function ApiKeys() {
  const list = useAsync(() => api.apiKeys(), []);
  const [f, setF] = useState<{ name: string; role: Role }>({ name: '', role: 'viewer' });
  const [created, setCreated] = useState<CreatedApiKey | null>(null);
  const [copied, setCopied] = useState(false);
  const create = useAction(async (e: FormEvent) => {
    e.preventDefault();
    setCopied(false);
    setCreated(await api.createApiKey(f));
    setF({ name: '', role: 'viewer' });
    list.reload();
  });
  const revoke = useAction(async (id: string) => {
    await api.revokeApiKey(id);
    list.reload();
  });
  return (
    <Section title="API keys" id="apikeys">
      <ErrorBox error={list.error ?? revoke.error} />
      {created ? <NewKey created={created} copied={copied} setCopied={setCopied} onDone={() => setCreated(null)} /> : null}
      {!list.data ? <Loading what="keys" /> : <KeyTable keys={list.data} revoke={revoke} />}
      <form className="form" onSubmit={(e) => void create.run(e)} aria-labelledby="key-h">
        <h3 id="key-h">Create a key</h3>
        <label>
          Name <input required maxLength={255} value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} />
        </label>
        <label>
          Role{' '}
          <select value={f.role} onChange={(e) => setF({ ...f, role: e.target.value as Role })}>
            <option value="viewer">viewer (reads, browses and downloads files)</option>
            <option value="operator">operator (also backs up, verifies, mounts)</option>
            <option value="admin">admin (also deletes and changes settings)</option>
          </select>
        </label>
        <button type="submit" className="primary" disabled={create.busy}>
          Create key
        </button>
        <ErrorBox error={create.error} title="Not created" />
      </form>
    </Section>
  );
}

function NewKey({ created, copied, setCopied, onDone }: { created: CreatedApiKey; copied: boolean; setCopied: (v: boolean) => void; onDone: () => void }) {
  return (
    <div className="notice notice-warn" role="status" data-testid="new-key">
      <p>
        Key <strong>{created.name}</strong> ({created.role}) — copy it now, it is shown once and cannot be recovered:
      </p>
      <p>
        <code className="key">{created.key}</code>{' '}
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard?.writeText(created.key).then(
              () => setCopied(true),
              () => setCopied(false),
            );
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>{' '}
        <button type="button" onClick={onDone}>
          Done
        </button>
      </p>
    </div>
  );
}

type ApiKeyList = Awaited<ReturnType<typeof api.apiKeys>>;

function KeyTable({ keys, revoke }: { keys: ApiKeyList; revoke: { run: (id: string) => Promise<unknown>; busy: boolean } }) {
  return (
    <DataTable columns={['Name', 'Role', 'Key', 'Created', 'Last used', 'State']}>
      {keys.map((k) => (
        <tr key={k.id}>
          <td>{k.name}</td>
          <td>{k.role}</td>
          <td className="mono small">{k.prefix}…</td>
          <td>{when(k.createdAt)}</td>
          <td>{ago(k.lastUsedAt)}</td>
          <td>
            {k.revokedAt ? (
              `revoked ${when(k.revokedAt)}`
            ) : (
              <button type="button" className="danger" onClick={() => void revoke.run(k.id)} disabled={revoke.busy} aria-label={`Revoke ${k.name}`}>
                Revoke
              </button>
            )}
          </td>
        </tr>
      ))}
    </DataTable>
  );
}
