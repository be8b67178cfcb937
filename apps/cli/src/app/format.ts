import Table from 'cli-table3';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1288490188 -> "1.2 GiB"; null/undefined -> "-". */
export function humanBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  if (n < 1024) return `${n} B`;
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`;
}

/** Seconds -> "1h02m", "3m05s", "42s". */
export function humanDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s) || s < 0) return '-';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** An ISO time in the local time zone: "2026-12-01 22:05:07"; missing -> "-". */
export function localTime(iso: string | Date | null | undefined): string {
  if (!iso) return '-';
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** 420 -> "0644"; an octal string passes through. */
export function octalMode(mode: number | string | null | undefined): string {
  if (mode === null || mode === undefined) return '-';
  if (typeof mode === 'string') return /^[0-7]+$/.test(mode) ? mode.padStart(4, '0') : mode;
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Parse an octal mode string or number (what the gateway sends) to a number. */
export function parseMode(mode: number | string | null | undefined, fallback: number): number {
  if (typeof mode === 'number' && Number.isFinite(mode)) return mode & 0o7777;
  if (typeof mode === 'string' && /^[0-7]{1,6}$/.test(mode)) return parseInt(mode, 8) & 0o7777;
  return fallback;
}

/** "drwxr-xr-x" style, from a type and a mode. */
export function modeString(type: string, mode: number): string {
  const t = type === 'dir' ? 'd' : type === 'symlink' ? 'l' : type === 'file' ? '-' : '?';
  const bits = 'rwxrwxrwx';
  let s = '';
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? bits[i] : '-';
  return t + s;
}

/** Cut a string to width display columns with an ellipsis. */
export function truncate(s: string, width: number): string {
  const chars = [...s];
  if (chars.length <= width) return s;
  if (width <= 1) return chars.slice(0, width).join('');
  return `${chars.slice(0, width - 1).join('')}…`;
}

export interface Column {
  header: string;
  /** right-align (numbers, sizes) */
  right?: boolean;
  /** never cut below this width */
  min?: number;
}

/**
 * A borderless table that fits `width` columns: the widest columns are cut
 * (with an ellipsis) until it fits. cli-table3 renders it.
 */
export function table(columns: Column[], rows: string[][], width = 80): string {
  const gap = 2;
  const len = (x: string) => [...x].length;
  const widths = columns.map((c, i) => Math.max(len(c.header), ...rows.map((r) => len(r[i] ?? ''))));
  const mins = columns.map((c) => Math.max(c.min ?? 4, Math.min(len(c.header), 8)));
  const total = () => widths.reduce((a, b) => a + b, 0) + gap * (columns.length - 1);
  while (total() > width) {
    let widest = -1;
    widths.forEach((w, i) => {
      if (w > (mins[i] ?? 4) && (widest < 0 || w > (widths[widest] ?? 0))) widest = i;
    });
    if (widest < 0) break;
    widths[widest] = (widths[widest] ?? 1) - 1;
  }
  const w = (i: number) => widths[i] ?? 4;
  const t = new Table({
    head: columns.map((c, i) => truncate(c.header, w(i))),
    colAligns: columns.map((c) => (c.right ? 'right' : 'left')),
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: ' '.repeat(gap),
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true },
  });
  for (const r of rows) t.push(columns.map((_, i) => truncate(r[i] ?? '', w(i))));
  return t
    .toString()
    .split('\n')
    .map((l) => l.replace(/\s+$/, ''))
    .join('\n');
}

/** Key/value lines ("name:  value") for one object. */
export function details(pairs: Array<[string, string | number | null | undefined]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w + 2)}${v === null || v === undefined || v === '' ? '-' : String(v)}`).join('\n');
}
