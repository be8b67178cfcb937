import { useEffect, useRef, useState } from 'react';
import { api } from '../api/client';
import type { JobProgress, JobState, ProgressEvent } from '../api/types';
import { Bar, DataTable, ErrorBox, StatusBadge } from './components';
import { bytes, duration, rate } from './format';
import { ENDED } from './runs';

interface DiskRate {
  at: number;
  bytes: number;
  rate: number;
}

/** Follows a run's server-sent events; measures each disk's rate from successive events. */
function useJobStream(runId: string, onEnd: ((status: JobState) => void) | undefined) {
  const [ev, setEv] = useState<ProgressEvent | null>(null);
  const [ended, setEnded] = useState<JobState | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const rates = useRef(new Map<number, DiskRate>());
  const endRef = useRef(onEnd);
  endRef.current = onEnd;

  useEffect(() => {
    const ac = new AbortController();
    let last: ProgressEvent | null = null;
    api
      .followJob(
        runId,
        (e) => {
          last = e;
          const p = typeof e.progress === 'object' ? e.progress : null;
          const now = performance.now();
          for (const d of p?.disks ?? []) {
            const prev = rates.current.get(d.diskId);
            if (!prev) rates.current.set(d.diskId, { at: now, bytes: d.bytesDone, rate: 0 });
            else if (now - prev.at > 200) {
              const inst = ((d.bytesDone - prev.bytes) * 1000) / (now - prev.at);
              rates.current.set(d.diskId, { at: now, bytes: d.bytesDone, rate: prev.rate ? prev.rate * 0.6 + inst * 0.4 : inst });
            }
          }
          setEv(e);
        },
        ac.signal,
      )
      .then(
        () => {
          if (ac.signal.aborted) return;
          const status = (last as ProgressEvent | null)?.status ?? 'unknown';
          setEnded(status);
          endRef.current?.(status);
        },
        (err: Error) => !ac.signal.aborted && setError(err),
      );
    return () => ac.abort();
  }, [runId]);
  return { ev, ended, error, rates: rates.current };
}

/**
 * Live progress of a run from the gateway's server-sent events: phase,
 * bytes, rate and ETA per disk. The per-disk rate is measured here from
 * successive events (the job reports one overall rate).
 */
export function LiveProgress({ runId, onEnd, compact = false }: { runId: string; onEnd?: (status: JobState) => void; compact?: boolean }) {
  const { ev, ended, error, rates } = useJobStream(runId, onEnd);
  const status = ended ?? ev?.status ?? 'queued';
  const p: JobProgress | null = ev && typeof ev.progress === 'object' ? ev.progress : null;
  return (
    <div className="live" aria-live="polite" data-testid="live-progress" data-run={runId} data-status={status} data-phase={p?.phase ?? ''}>
      <div className="live-head">
        <StatusBadge status={status} />
        <span className="phase" data-testid="phase">
          {p?.phase ?? (ENDED.includes(status) ? 'ended' : 'waiting for a worker')}
        </span>
        {p ? (
          <span className="muted">
            {bytes(p.bytesDone)} of {bytes(p.bytesTotal)} · {rate(p.rateBytesPerSec)}
            {p.bytesSkippedZero ? ` · ${bytes(p.bytesSkippedZero)} zero skipped` : ''}
          </span>
        ) : null}
      </div>
      {p ? (
        // A run with nothing to copy is complete when it is done.
        <Bar value={p.phase === 'done' && !p.bytesTotal ? 1 : p.bytesDone} total={p.bytesTotal || 1} label="Overall progress" warnAt={101} />
      ) : null}
      {p?.message ? <p className="muted small">{p.message}</p> : null}
      {!compact && p?.disks?.length ? <DiskTable disks={p.disks} rates={rates} /> : null}
      {ev?.error ? <p className="error">{ev.error}</p> : null}
      <ErrorBox error={error} title="Progress stream" />
    </div>
  );
}

function DiskTable({ disks, rates }: { disks: NonNullable<JobProgress['disks']>; rates: Map<number, DiskRate> }) {
  return (
    <DataTable columns={['Disk', 'Phase', 'Copied', 'Rate', 'ETA']} className="small" scroll={false}>
      {disks.map((d) => {
        const r = rates.get(d.diskId)?.rate ?? 0;
        const left = d.bytesTotal - d.bytesDone;
        return (
          <tr key={d.diskId}>
            <td>disk {d.diskId}</td>
            <td>{d.phase}</td>
            <td>
              <Bar value={d.bytesDone} total={d.bytesTotal} label={`disk ${d.diskId}`} warnAt={101} />
              <span className="small">
                {bytes(d.bytesDone)} / {bytes(d.bytesTotal)}
              </span>
            </td>
            <td>{rate(r)}</td>
            <td>{left <= 0 ? 'done' : r > 0 ? duration(left / r) : '–'}</td>
          </tr>
        );
      })}
    </DataTable>
  );
}
