import { useEffect, useMemo, useState } from 'react';
import { api } from '../api/client';
import type { FileEntry } from '../api/types';
import { DataTable, ErrorBox, Loading, Notice, Section, useAction, useAsync } from '../ui/components';
import { ago, bytes, mode, short, when } from '../ui/format';
import { PointSelects, usePointChoice } from '../ui/point-choice';
import { Link, navigate } from '../ui/router';
import { saveBlob } from '../ui/save';
import { useCan } from '../ui/session';
import { Pager } from './Jobs';

/** The file-restore page's state: VMs and their chains to choose from, the mounts, mount and unmount. */
function useRestorePage(backupId: string | null) {
  const mounts = useAsync(() => api.mounts(), []);
  const choice = usePointChoice(backupId);
  const mount = useAction(async () => {
    const m = await api.mount(choice.point);
    navigate(`/restore/${m.mount_id}`);
  });
  const unmount = useAction(async (id: string) => {
    await api.unmount(id);
    mounts.reload();
  });
  return { mounts, choice, mount, unmount };
}
type RestorePageState = ReturnType<typeof useRestorePage>;

export function RestorePage({ backupId }: { backupId: string | null }) {
  const may = useCan();
  const s = useRestorePage(backupId);
  return (
    <>
      <h1>File restore</h1>
      {may.mount ? <MountForm s={s} /> : <Notice>Your key may browse mounted restore points; mounting needs an operator or admin key.</Notice>}
      <MountList s={s} canUnmount={may.mount} />
    </>
  );
}

function MountForm({ s: { choice, mount } }: { s: RestorePageState }) {
  const { point, chains, preset } = choice;
  return (
    <Section title="Mount a restore point" id="mount">
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          void mount.run();
        }}
      >
        <PointSelects choice={choice} ids={{ vm: 'restore-vm', point: 'restore-point' }} size={(p) => p.allocated_bytes} />
        <button type="submit" className="primary" disabled={!point || mount.busy} data-testid="mount">
          {mount.busy ? 'Mounting…' : 'Mount'}
        </button>
      </form>
      <p className="muted small">Mounted read-only, the whole chain; mounts that nobody uses are unmounted after a while.</p>
      <ErrorBox error={mount.error ?? chains.error ?? preset.error} title="Cannot mount" />
    </Section>
  );
}

function MountList({ s: { mounts, unmount }, canUnmount }: { s: RestorePageState; canUnmount: boolean }) {
  return (
    <Section
      title="Mounted restore points"
      id="mounts"
      actions={
        <button type="button" onClick={() => mounts.reload()}>
          Refresh
        </button>
      }
    >
      <ErrorBox error={mounts.error ?? unmount.error} />
      {!mounts.data ? (
        <Loading what="mounts" />
      ) : mounts.data.length === 0 ? (
        <p className="muted">Nothing is mounted.</p>
      ) : (
        <DataTable columns={['Mount', 'Restore point', 'Partitions', 'Mounted', 'Last used', 'Actions']}>
          {mounts.data.map((m) => (
            <tr key={m.mount_id}>
              <td>
                <Link to={`/restore/${m.mount_id}`}>{short(m.mount_id)}</Link>
              </td>
              <td className="mono">{short(m.backup_id)}</td>
              <td>{m.partitions.map((p) => `${p.name}${p.fsType ? ` (${p.fsType})` : ''}`).join(', ') || '–'}</td>
              <td>{when(m.created_at)}</td>
              <td>{ago(m.last_access_at)}</td>
              <td>
                <Link to={`/restore/${m.mount_id}`} className="button">
                  Browse
                </Link>{' '}
                {canUnmount ? (
                  <button type="button" onClick={() => void unmount.run(m.mount_id)} disabled={unmount.busy}>
                    Unmount
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </Section>
  );
}

type SortKey = 'name' | 'size' | 'mtime' | 'type';
const PAGE = 50;
/** Directories up to this size are loaded whole, so sorting covers all of it; bigger ones page on the server (by name). */
const WHOLE = 5000;
const CHUNK = 1000;

async function loadDir(mountId: string, path: string, serverPage: number): Promise<{ entries: FileEntry[]; total: number; whole: boolean }> {
  const first = await api.files(mountId, path, serverPage * PAGE, serverPage > 0 ? PAGE : CHUNK);
  if (serverPage > 0) return { entries: first.entries, total: first.total, whole: false };
  if (first.total <= first.entries.length) return { entries: first.entries, total: first.total, whole: true };
  if (first.total > WHOLE) return { entries: first.entries.slice(0, PAGE), total: first.total, whole: false };
  const entries = [...first.entries];
  while (entries.length < first.total) {
    const next = await api.files(mountId, path, entries.length, CHUNK);
    if (!next.entries.length) break;
    entries.push(...next.entries);
  }
  return { entries, total: first.total, whole: true };
}

function join(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

type Sort = { key: SortKey; desc: boolean };

/** The browser's state: the mount, the directory (whole or a server page), its sort and page, download and unmount. */
function useBrowser(mountId: string, path: string) {
  const mounts = useAsync(() => api.mounts(), [mountId]);
  const [serverPage, setServerPage] = useState(0);
  const [page, setPage] = useState(0);
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: 'name', desc: false });
  useEffect(() => {
    setServerPage(0);
    setPage(0);
  }, [path]);
  const dir = useAsync(() => loadDir(mountId, path, serverPage), [mountId, path, serverPage]);
  const [note, setNote] = useState<string | null>(null);
  const download = useAction(async (entry: FileEntry | null) => {
    const target = entry ?? null;
    const p = target ? target.path || join(path, target.name) : path;
    const isDir = target ? target.type === 'dir' : true;
    const base = (p.split('/').pop() || 'restore') + (isDir ? '.tar' : '');
    setNote(`Downloading ${base}…`);
    const blob = await api.download(mountId, p, isDir ? 'archive' : 'file');
    saveBlob(blob, base);
    setNote(`Downloaded ${base} (${bytes(blob.size)}).`);
  });
  const unmount = useAction(async () => {
    await api.unmount(mountId);
    navigate('/restore');
  });

  const m = mounts.data?.find((x) => x.mount_id === mountId);
  const sorted = useMemo(() => {
    const list = [...(dir.data?.entries ?? [])];
    if (!dir.data?.whole) return list;
    const k = sort.key;
    list.sort((a, b) => {
      const dirsFirst = (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1);
      if (k === 'name' && dirsFirst) return dirsFirst;
      const c =
        k === 'size'
          ? a.size - b.size
          : k === 'mtime'
            ? a.mtime.localeCompare(b.mtime)
            : k === 'type'
              ? a.type.localeCompare(b.type) || a.name.localeCompare(b.name)
              : a.name.localeCompare(b.name);
      return sort.desc ? -c : c;
    });
    return list;
  }, [dir.data, sort]);
  const whole = dir.data?.whole ?? true;
  const pages = whole ? Math.max(1, Math.ceil(sorted.length / PAGE)) : Math.max(1, Math.ceil((dir.data?.total ?? 0) / PAGE));
  const shown = whole ? sorted.slice(page * PAGE, page * PAGE + PAGE) : sorted;
  const parts = path ? path.split('/') : [];
  const go = (p: string) => navigate(`/restore/${mountId}${p ? `?path=${encodeURIComponent(p)}` : ''}`);
  return { mounts, serverPage, setServerPage, page, setPage, sort, setSort, dir, note, download, unmount, m, whole, pages, shown, parts, go };
}
type BrowserState = ReturnType<typeof useBrowser>;

function SortHeader({ k, label, sort, setSort, whole }: { k: SortKey; label: string; sort: Sort; setSort: BrowserState['setSort']; whole: boolean }) {
  return (
    <th scope="col" aria-sort={sort.key === k ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
      <button
        type="button"
        className="link"
        onClick={() => setSort((s) => ({ key: k, desc: s.key === k ? !s.desc : false }))}
        disabled={!whole}
        title={whole ? `Sort by ${label}` : 'This directory is too large to sort here; it is listed by name'}
      >
        {label}
        {sort.key === k ? (sort.desc ? ' ▼' : ' ▲') : ''}
      </button>
    </th>
  );
}

export function RestoreBrowser({ mountId, path }: { mountId: string; path: string }) {
  const may = useCan();
  const b = useBrowser(mountId, path);
  const { mounts, m, dir, download, unmount, note } = b;
  return (
    <>
      <p className="crumbs">
        <Link to="/restore">File restore</Link> /
      </p>
      <h1>Mount {short(mountId)}</h1>
      <ErrorBox error={mounts.error} />
      {mounts.data && !m ? <Notice kind="warn">This mount is gone (unmounted, or idle for too long). Mount the restore point again.</Notice> : null}
      {m ? (
        <p className="muted">
          Restore point <span className="mono">{m.backup_id ?? '?'}</span> · partition table {m.partition_table ?? 'none'} · mounted {when(m.created_at)} ·{' '}
          {m.partitions.map((p) => `${p.name}: ${p.fsType ?? 'unknown'}${p.mounted ? '' : ` (not mounted${p.error ? `: ${p.error}` : ''})`}`).join(', ')}
        </p>
      ) : null}
      <BrowserToolbar b={b} path={path} canUnmount={may.mount} />
      <ErrorBox error={dir.error ?? download.error ?? unmount.error} />
      {note && !download.error ? <Notice kind="ok">{note}</Notice> : null}
      {!dir.data ? <Loading what="the directory" /> : <FileListing b={b} path={path} total={dir.data.total} />}
    </>
  );
}

function BrowserToolbar({ b: { parts, go, download, unmount }, path, canUnmount }: { b: BrowserState; path: string; canUnmount: boolean }) {
  return (
    <div className="toolbar">
      <nav aria-label="Path" className="path">
        <button type="button" className="link" onClick={() => go('')}>
          /
        </button>
        {parts.map((seg, i) => (
          <span key={i}>
            <button
              type="button"
              className="link"
              onClick={() => go(parts.slice(0, i + 1).join('/'))}
              aria-current={i === parts.length - 1 ? 'location' : undefined}
            >
              {seg}
            </button>
            {i < parts.length - 1 ? ' / ' : ''}
          </span>
        ))}
      </nav>
      {path ? (
        <button type="button" onClick={() => void download.run(null)} disabled={download.busy}>
          Download this directory (.tar)
        </button>
      ) : null}
      {canUnmount ? (
        <button type="button" className="danger" onClick={() => void unmount.run()} disabled={unmount.busy} data-testid="unmount">
          {unmount.busy ? 'Unmounting…' : 'Unmount'}
        </button>
      ) : null}
    </div>
  );
}

function FileListing({ b, path, total }: { b: BrowserState; path: string; total: number }) {
  const { whole, sort, setSort, shown, parts, go, download, page, serverPage, pages, setPage, setServerPage } = b;
  const header = (k: SortKey, label: string) => <SortHeader k={k} label={label} sort={sort} setSort={setSort} whole={whole} />;
  return (
    <>
      <p className="muted small" aria-live="polite">
        {total} entries{!whole ? ' (large directory: listed by name, page by page)' : ''}
      </p>
      <DataTable
        columns={[header('name', 'Name'), header('type', 'Type'), header('size', 'Size'), header('mtime', 'Modified'), 'Mode', 'Actions']}
        className="files"
        testId="file-table"
      >
        {path ? (
          <tr>
            <td colSpan={6}>
              <button type="button" className="link" onClick={() => go(parts.slice(0, -1).join('/'))}>
                ⬑ up
              </button>
            </td>
          </tr>
        ) : null}
        {shown.map((e) => (
          <FileRow key={e.name} e={e} p={e.path || join(path, e.name)} go={go} download={download} />
        ))}
      </DataTable>
      <Pager page={whole ? page : serverPage} pages={pages} onPage={whole ? setPage : setServerPage} />
    </>
  );
}

function FileRow({ e, p, go, download }: { e: FileEntry; p: string; go: (p: string) => void; download: BrowserState['download'] }) {
  return (
    <tr key={e.name} data-name={e.name} data-type={e.type}>
      <td>
        {e.type === 'dir' ? (
          <button type="button" className="link" onClick={() => go(p)}>
            📁 {e.name}
          </button>
        ) : (
          <span>
            {e.type === 'symlink' ? '↪ ' : ''}
            {e.name}
            {e.symlinkTarget ? <span className="muted"> → {e.symlinkTarget}</span> : null}
          </span>
        )}
      </td>
      <td>{e.type}</td>
      <td className="num">{e.type === 'dir' ? '' : bytes(e.size)}</td>
      <td>{when(e.mtime)}</td>
      <td className="mono small">{mode(e.mode, e.type)}</td>
      <td>
        {e.type === 'file' ? (
          <button type="button" onClick={() => void download.run(e)} disabled={download.busy} aria-label={`Download ${e.name}`}>
            Download
          </button>
        ) : e.type === 'dir' ? (
          <button type="button" onClick={() => void download.run(e)} disabled={download.busy} aria-label={`Download ${e.name} as a tar archive`}>
            Archive
          </button>
        ) : null}
      </td>
    </tr>
  );
}
