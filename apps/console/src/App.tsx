import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { api } from './api/client';
import { setUnauthorizedHandler, storedKey, storeKey } from './api/http';
import type { WhoAmI } from './api/types';
import { ErrorBox, Notice } from './ui/components';
import { Link, match, navigate, useLocation } from './ui/router';
import { can, SessionContext } from './ui/session';
import { Dashboard } from './pages/Dashboard';
import { VmList, VmPage } from './pages/Vms';
import { JobList, JobPage } from './pages/Jobs';
import { RestoreBrowser, RestorePage } from './pages/Restore';
import { DiskRestorePage } from './pages/DiskRestore';
import { Settings } from './pages/Settings';

export function App() {
  const [me, setMe] = useState<WhoAmI | null>(null);
  const [checking, setChecking] = useState(() => !!storedKey());
  const [why, setWhy] = useState<string | null>(null);

  const logout = useCallback((reason?: string) => {
    storeKey(null);
    setMe(null);
    setWhy(reason ?? null);
  }, []);

  useEffect(() => {
    setUnauthorizedHandler((message) => logout(message));
    const key = storedKey();
    if (!key) return;
    api
      .whoami()
      .then(
        (w) => setMe(w),
        (err: Error) => {
          logout(err.message);
        },
      )
      .finally(() => setChecking(false));
  }, [logout]);

  if (checking) return <p className="muted center">Checking the stored API key…</p>;
  if (!me)
    return (
      <Login
        onLogin={(w) => {
          setWhy(null);
          setMe(w);
        }}
        why={why}
      />
    );
  return (
    <SessionContext.Provider value={{ me, logout }}>
      <Shell me={me} onLogout={() => logout()} />
    </SessionContext.Provider>
  );
}

function Login({ onLogin, why }: { onLogin: (w: WhoAmI) => void; why: string | null }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const k = key.trim();
    try {
      const w = await api.whoami(k);
      storeKey(k);
      onLogin(w);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login">
      <form className="card" onSubmit={submit} aria-labelledby="login-h">
        <h1 id="login-h">Sendense console</h1>
        <p className="muted">Log in with an API key (sdk_…). It is kept in this tab only and sent in a header, never in a link.</p>
        {why ? <Notice kind="warn">{why}</Notice> : null}
        <label htmlFor="apikey">API key</label>
        <input
          id="apikey"
          name="apikey"
          type="password"
          autoComplete="off"
          spellCheck={false}
          autoFocus
          value={key}
          onChange={(e) => setKey(e.target.value)}
          required
        />
        <ErrorBox error={error} title="Login failed" />
        <button type="submit" className="primary" disabled={busy || !key.trim()}>
          {busy ? 'Checking…' : 'Log in'}
        </button>
        <p className="muted small">
          No key yet? An administrator creates one with <code>sendense-ctl apikey create</code> or on the Settings page.
        </p>
      </form>
    </main>
  );
}

const NAV = [
  { to: '/', label: 'Dashboard' },
  { to: '/vms', label: 'VMs' },
  { to: '/jobs', label: 'Jobs' },
  { to: '/restore', label: 'File restore' },
  { to: '/disk-restore', label: 'Disk restore' },
];

function Shell({ me, onLogout }: { me: WhoAmI; onLogout: () => void }) {
  const loc = useLocation();
  const nav = can.settings(me.role) ? [...NAV, { to: '/settings', label: 'Settings' }] : NAV;
  const active = (to: string) => (to === '/' ? loc.path === '/' : loc.path === to || loc.path.startsWith(`${to}/`));
  let page;
  let m;
  if (loc.path === '/') page = <Dashboard />;
  else if (loc.path === '/vms') page = <VmList />;
  else if ((m = match('/vms/:id', loc.path))) page = <VmPage contextId={m['id'] ?? ''} />;
  else if (loc.path === '/jobs') page = <JobList />;
  else if ((m = match('/jobs/:id', loc.path))) page = <JobPage runId={m['id'] ?? ''} restore={loc.query.get('kind') === 'restore'} />;
  else if (loc.path === '/restore') page = <RestorePage backupId={loc.query.get('backup')} />;
  else if ((m = match('/restore/:id', loc.path))) page = <RestoreBrowser mountId={m['id'] ?? ''} path={loc.query.get('path') ?? ''} />;
  else if (loc.path === '/disk-restore') page = <DiskRestorePage backupId={loc.query.get('backup')} />;
  else if (loc.path === '/settings' && can.settings(me.role)) page = <Settings />;
  else if (loc.path === '/settings') page = <Notice kind="warn">Settings are for administrators; your key has the role {me.role}.</Notice>;
  else
    page = (
      <Notice kind="warn">
        No page at {loc.path}. <Link to="/">Go to the dashboard</Link>.
      </Notice>
    );
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/" className="brand">
          Sendense
        </Link>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.to}>
                <Link to={n.to} aria-current={active(n.to) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span title={`API key ${me.id}`}>
            {me.name}{' '}
            <span className={`badge badge-role`} data-testid="role">
              {me.role}
            </span>
          </span>
          <button
            type="button"
            onClick={() => {
              onLogout();
              navigate('/', { replace: true });
            }}
          >
            Log out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}
