import { createHash } from 'node:crypto';
import type { NbdExportNameParts } from '@sendense/contracts';
import { invalid } from '../exporter-error';

/** NBD export names end up in config files, argument lists and URIs. */
export const MAX_EXPORT_NAME_LENGTH = 63;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const CONTEXT_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const DISK_RE = /^[A-Za-z0-9]{1,16}$/;
const TYPE_RE = /^[a-z][a-z0-9]{0,15}$/;
const TIMESTAMP_RE = /^[0-9]{8}T[0-9]{6}(?:[0-9]{1,3})?Z?$/;
const HASH_LEN = 6;

/** Explain why a string is unusable, naming the first offending character. */
function describeBad(label: string, value: string, rule: string): string {
  const bad = [...value].find((c) => !/[A-Za-z0-9._-]/.test(c));
  const what = bad === undefined ? '' : ` (contains ${JSON.stringify(bad)})`;
  return `${label} ${JSON.stringify(value)} is not allowed${what}: ${rule}`;
}

export function validateExportName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw invalid('export name is missing');
  if (name.length > MAX_EXPORT_NAME_LENGTH) {
    throw invalid(`export name ${JSON.stringify(name)} is ${name.length} characters; at most ${MAX_EXPORT_NAME_LENGTH} are allowed`);
  }
  if (!NAME_RE.test(name)) {
    throw invalid(describeBad('export name', name, 'use letters, digits, dot, dash, underscore; start with a letter or digit'));
  }
  return name;
}

/** Compact UTC timestamp, e.g. 20251004T120000. */
export function compactTimestamp(date = new Date()): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '');
}

/**
 * `backup-{vmContextId}-disk{diskId}-{type}-{timestamp}`, at most 63 characters.
 * A context id too long to fit is cut and suffixed with 6 hex digits of its
 * sha256, so two long ids sharing a prefix still give different names.
 */
export function buildExportName(parts: NbdExportNameParts, now = new Date()): string {
  const ctx = parts.vmContextId;
  if (typeof ctx !== 'string' || ctx === '') throw invalid('vmContextId is missing');
  if (!CONTEXT_RE.test(ctx) || ctx.length > 256) {
    throw invalid(describeBad('vmContextId', ctx, 'use up to 256 letters, digits, dash, underscore'));
  }
  const disk = String(parts.diskId ?? '');
  if (!DISK_RE.test(disk)) throw invalid(describeBad('diskId', disk, 'use 1-16 letters or digits'));
  const type = parts.type;
  if (typeof type !== 'string' || !TYPE_RE.test(type)) {
    throw invalid(describeBad('type', String(type), 'use 1-16 lower-case letters or digits, e.g. full, incr, restore'));
  }
  const ts = parts.timestamp ?? compactTimestamp(now);
  if (typeof ts !== 'string' || !TIMESTAMP_RE.test(ts)) {
    throw invalid(describeBad('timestamp', String(ts), 'use the compact form 20251004T120000 (optionally with milliseconds and Z)'));
  }

  const rest = `-disk${disk}-${type}-${ts}`;
  const prefix = 'backup-';
  const room = MAX_EXPORT_NAME_LENGTH - prefix.length - rest.length;
  let ctxPart = ctx;
  if (ctx.length > room) {
    const keep = room - HASH_LEN - 1;
    if (keep < 1) throw invalid(`diskId, type and timestamp leave no room for the context id in a ${MAX_EXPORT_NAME_LENGTH}-character name`);
    const hash = createHash('sha256').update(ctx).digest('hex').slice(0, HASH_LEN);
    // A dot separates the hash: context ids cannot contain dots, so a cut name never equals an uncut one.
    ctxPart = `${ctx.slice(0, keep).replace(/[-_]+$/, '')}.${hash}`;
  }
  return validateExportName(`${prefix}${ctxPart}${rest}`);
}
