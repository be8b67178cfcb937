import { Fragment, useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import { percent } from './format';

/** Load data for a page: reload() fetches again; stale answers of an earlier load are dropped. */
export function useAsync<T>(fn: () => Promise<T>, deps: unknown[]): { data: T | undefined; error: Error | undefined; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const seq = useRef(0);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (error: Error) => mine === seq.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** Run an action from a button: busy while it runs, its error or result kept for the page to show. */
export function useAction<A extends unknown[], T>(fn: (...a: A) => Promise<T>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const run = useCallback(
    async (...a: A): Promise<T | undefined> => {
      setBusy(true);
      setError(null);
      try {
        return await fn(...a);
      } catch (err) {
        setError(err as Error);
        return undefined;
      } finally {
        setBusy(false);
      }
    },
    [fn],
  );
  return { run, busy, error, clear: () => setError(null) };
}

export function ErrorBox({ error, title }: { error: Error | null | undefined; title?: string }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {error.message}
    </div>
  );
}

export function Notice({ children, kind = 'info' }: { children: ReactNode; kind?: 'info' | 'ok' | 'warn' }) {
  return (
    <div className={`notice notice-${kind}`} role="status">
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" aria-busy="true">
      Loading {what}…
    </p>
  );
}

/** A horizontal bar: used of total, with its text for screen readers. */
export function Bar({ value, total, label, warnAt = 85 }: { value: number; total: number; label: string; warnAt?: number }) {
  const p = percent(value, total);
  return (
    <div
      className="bar"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(p)}
      aria-valuetext={`${p.toFixed(0)}%`}
    >
      <div className={`bar-fill${p >= warnAt ? ' bar-warn' : ''}`} style={{ width: `${p}%` }} />
    </div>
  );
}

export function Badge({ kind, children, title }: { kind: string; children: ReactNode; title?: string }) {
  return (
    <span className={`badge badge-${kind}`} title={title}>
      {children}
    </span>
  );
}

export function StatusBadge({ status }: { status: string }) {
  const kind =
    status === 'completed'
      ? 'ok'
      : status === 'failed'
        ? 'bad'
        : status === 'cancelled'
          ? 'muted'
          : status === 'running' || status === 'cancelling'
            ? 'run'
            : 'wait';
  return <Badge kind={kind}>{status}</Badge>;
}

export function Section({ title, actions, children, id }: { title: string; actions?: ReactNode; children: ReactNode; id?: string }) {
  return (
    <section className="card" aria-labelledby={id ? `${id}-h` : undefined} id={id}>
      <div className="card-head">
        <h2 id={id ? `${id}-h` : undefined}>{title}</h2>
        {actions ? <div className="card-actions">{actions}</div> : null}
      </div>
      {children}
    </section>
  );
}

/**
 * The console's table: one header row (a string is a plain column header, an
 * element is its own <th>, e.g. a sort button), the rows as children, inside
 * a box that scrolls sideways on a narrow screen unless scroll is false.
 */
export function DataTable({
  columns,
  className,
  testId,
  scroll = true,
  children,
}: {
  columns: ReactNode[];
  className?: string;
  testId?: string;
  scroll?: boolean;
  children: ReactNode;
}) {
  const table = (
    <table className={className ? `table ${className}` : 'table'} data-testid={testId}>
      <thead>
        <tr>
          {columns.map((c, i) =>
            typeof c === 'string' ? (
              <th key={i} scope="col">
                {c}
              </th>
            ) : (
              <Fragment key={i}>{c}</Fragment>
            ),
          )}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
  return scroll ? <div className="scroll">{table}</div> : table;
}

/** Poll while a page is open (dashboard, job lists). */
export function useInterval(fn: () => void, ms: number | null): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (ms === null) return;
    const t = setInterval(() => ref.current(), ms);
    return () => clearInterval(t);
  }, [ms]);
}
