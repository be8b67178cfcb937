import { SingleBar, MultiBar, Presets } from 'cli-progress';
import { ApiError, type RawApi } from '@sendense/api-client';
import type { Ctx } from './context';
import { CliError, EXIT } from './errors';
import { humanBytes, humanDuration } from './format';

/** The progress a backup job reports (libs/contracts JobProgress). */
export interface JobProgress {
  phase?: string;
  bytesDone?: number;
  bytesTotal?: number;
  rateBytesPerSec?: number;
  disks?: { diskId: number; bytesDone: number; bytesTotal: number; phase: string }[];
  message?: string;
}
export interface ProgressEvent {
  run_id: string;
  status: string;
  progress: JobProgress | number | null;
  error: string | null;
}

export const TERMINAL = ['completed', 'failed', 'cancelled'];

/** One plain progress line (no control characters). */
export function progressLine(runId: string, e: ProgressEvent): string {
  const p = typeof e.progress === 'object' && e.progress ? e.progress : null;
  const parts = [`job ${runId}: ${e.status}`];
  if (p?.phase) parts.push(p.phase);
  if (p && p.bytesTotal) {
    const pct = Math.min(100, Math.floor(((p.bytesDone ?? 0) / p.bytesTotal) * 100));
    parts.push(`${pct}% ${humanBytes(p.bytesDone ?? 0)}/${humanBytes(p.bytesTotal)}`);
    if (p.rateBytesPerSec) {
      parts.push(`${humanBytes(p.rateBytesPerSec)}/s`);
      parts.push(`ETA ${humanDuration((p.bytesTotal - (p.bytesDone ?? 0)) / p.rateBytesPerSec)}`);
    }
  }
  if (p?.message) parts.push(p.message);
  return parts.join('  ');
}

interface Display {
  update(e: ProgressEvent): void;
  stop(): void;
}

/** Bars on a terminal: one per disk, phase, bytes, rate and ETA. */
class BarDisplay implements Display {
  private readonly multi: MultiBar;
  private readonly bars = new Map<number, SingleBar>();
  private readonly rates = new Map<number, { at: number; bytes: number; rate: number }>();
  constructor(stream: NodeJS.WritableStream) {
    this.multi = new MultiBar(
      {
        stream: stream as NodeJS.WriteStream,
        format: ' disk {disk} [{bar}] {percentage}% | {phase} | {done}/{total} | {rate}/s | ETA {etaH}',
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        barsize: 24,
        fps: 10,
        autopadding: true,
        forceRedraw: true,
      },
      Presets.shades_classic,
    );
  }
  update(e: ProgressEvent): void {
    const p = typeof e.progress === 'object' && e.progress ? e.progress : null;
    const disks = p?.disks?.length ? p.disks : p ? [{ diskId: 0, bytesDone: p.bytesDone ?? 0, bytesTotal: p.bytesTotal ?? 0, phase: p.phase ?? e.status }] : [];
    const now = Date.now();
    for (const d of disks) {
      const prev = this.rates.get(d.diskId);
      let rate = prev?.rate ?? 0;
      if (prev && now > prev.at && d.bytesDone >= prev.bytes) {
        const inst = ((d.bytesDone - prev.bytes) * 1000) / (now - prev.at);
        rate = prev.rate ? prev.rate * 0.6 + inst * 0.4 : inst;
      }
      this.rates.set(d.diskId, { at: now, bytes: d.bytesDone, rate });
      const payload = {
        disk: d.diskId,
        phase: (d.phase || p?.phase || e.status).padEnd(10),
        done: humanBytes(d.bytesDone),
        total: humanBytes(d.bytesTotal),
        rate: humanBytes(Math.round(rate)),
        etaH: rate > 0 ? humanDuration((d.bytesTotal - d.bytesDone) / rate) : '-',
      };
      const total = Math.max(1, d.bytesTotal);
      let bar = this.bars.get(d.diskId);
      if (!bar) {
        bar = this.multi.create(total, d.bytesDone, payload);
        this.bars.set(d.diskId, bar);
      } else {
        bar.setTotal(total);
        bar.update(d.bytesDone, payload);
      }
    }
  }
  stop(): void {
    this.multi.stop();
  }
}

/** Plain lines, at most one per interval (and one on each phase or status change). */
class LineDisplay implements Display {
  private last = 0;
  private lastKey = '';
  constructor(
    private readonly ctx: Ctx,
    private readonly runId: string,
    private readonly intervalMs: number,
  ) {}
  update(e: ProgressEvent): void {
    const p = typeof e.progress === 'object' && e.progress ? e.progress : null;
    const key = `${e.status}/${p?.phase ?? ''}`;
    const now = Date.now();
    if (key === this.lastKey && now - this.last < this.intervalMs && !TERMINAL.includes(e.status)) return;
    this.last = now;
    this.lastKey = key;
    this.ctx.note(progressLine(this.runId, e));
  }
  stop(): void {
    // nothing to clear
  }
}

/** JSON lines on stdout (job watch --json). */
class JsonLinesDisplay implements Display {
  constructor(private readonly ctx: Ctx) {}
  update(e: ProgressEvent): void {
    this.ctx.emit({ event: 'progress', ...e });
  }
  stop(): void {
    // nothing to clear
  }
}

export interface WatchOptions {
  /** JSON lines of every event on stdout (job watch --json); else nothing on stdout */
  jsonLines?: boolean;
  /** seconds between plain lines when not on a terminal */
  intervalMs?: number;
  /** how long to keep reconnecting a dropped stream before giving up */
  reconnectForMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Follow a job's server-sent events until it ends, showing progress; a
 * dropped stream is reconnected. Answers the final status.
 */
export async function watchJob(ctx: Ctx, raw: RawApi, runId: string, o: WatchOptions = {}): Promise<ProgressEvent> {
  const interval = o.intervalMs ?? 5000;
  const display: Display | null = o.jsonLines
    ? new JsonLinesDisplay(ctx)
    : ctx.quiet
      ? null
      : ctx.io.stderr.isTTY
        ? new BarDisplay(ctx.io.stderr)
        : new LineDisplay(ctx, runId, interval);
  const reconnectFor = o.reconnectForMs ?? 120_000;
  let last: ProgressEvent | null = null;
  let failingSince = 0;
  try {
    for (;;) {
      let ended: string | null = null;
      try {
        for await (const ev of raw.events(`/api/v1/jobs/${encodeURIComponent(runId)}/progress`)) {
          failingSince = 0;
          if (ev.event === 'progress') {
            last = JSON.parse(ev.data) as ProgressEvent;
            display?.update(last);
          } else if (ev.event === 'end') {
            ended = (JSON.parse(ev.data) as { status: string }).status;
            break;
          }
        }
      } catch (err) {
        if (err instanceof ApiError && err.status < 500) throw err; // 404, 401, 403: reconnecting will not help
        if (!failingSince) failingSince = Date.now();
        if (Date.now() - failingSince > reconnectFor) throw err;
        if (!ctx.quiet && !display) ctx.note(`progress stream of job ${runId} dropped (${(err as Error).message}); reconnecting`);
      }
      if (ended) return { ...(last ?? { run_id: runId, progress: null, error: null }), status: ended };
      // The stream closed without an end event: reconnect after a short pause.
      if (!failingSince) failingSince = Date.now();
      if (Date.now() - failingSince > reconnectFor) {
        throw new CliError(
          `the progress stream of job ${runId} kept dropping for ${Math.round(reconnectFor / 1000)} s`,
          EXIT.unreachable,
          `check the gateway; follow the job later with: sendense-ctl job watch ${runId}`,
        );
      }
      await sleep(1000);
    }
  } finally {
    display?.stop();
  }
}
