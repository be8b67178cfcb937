import { isIP } from 'node:net';
import { isAbsolute, normalize } from 'node:path';

/**
 * Settings come from the environment, are validated once at start, and are
 * then passed around as a typed object. One definition per variable carries
 * its parser, default and documentation, so the README table and the
 * validation can never disagree (a test checks the README).
 */

export interface EnvVar<T> {
  description: string;
  /** Default as the user would write it in the environment. */
  default?: string;
  /** Parse the raw string; throw an Error whose message says what is expected. */
  parse(raw: string): T;
}

export type EnvSchema = Record<string, EnvVar<unknown>>;
export type EnvValues<S extends EnvSchema> = { [K in keyof S]: S[K] extends EnvVar<infer T> ? T : never };

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * A setting's value as an error message may show it: secrets not at all, and
 * a URL's password (REDIS_URL=redis://sendense:...@host, DATABASE_URL) as ***.
 */
export function shownValue(name: string, raw: string): string {
  if (/SECRET|TOKEN|PASSWORD/.test(name)) return '(hidden)';
  return JSON.stringify(raw.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*:)[^@/?#]*@/i, '$1***@'));
}

export function loadEnv<S extends EnvSchema>(schema: S, env: NodeJS.ProcessEnv = process.env): EnvValues<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(schema)) {
    const raw = env[name] !== undefined && env[name] !== '' ? env[name] : spec.default;
    if (raw === undefined) {
      problems.push(`${name} is required: ${spec.description}`);
      continue;
    }
    try {
      out[name] = spec.parse(raw);
    } catch (err) {
      problems.push(`${name}=${shownValue(name, raw)} is invalid: ${(err as Error).message}`);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return out as EnvValues<S>;
}

// Parsers ------------------------------------------------------------------

export const str = (description: string, def?: string): EnvVar<string> => ({ description, default: def, parse: (r) => r });

/** A name made of letters, digits, '-' and '_' (1-64 characters): safe in keys, paths and URLs. */
export const name = (description: string, def: string): EnvVar<string> => ({
  description,
  default: def,
  parse(r) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(r)) throw new Error('expected 1-64 letters, digits, - or _');
    return r;
  },
});

export const int = (description: string, def: number | undefined, min = 0, max = Number.MAX_SAFE_INTEGER): EnvVar<number> => ({
  description,
  default: def === undefined ? undefined : String(def),
  parse(r) {
    if (!/^\d+$/.test(r.trim())) throw new Error(`expected a whole number`);
    const n = Number(r);
    if (n < min || n > max) throw new Error(`expected a number from ${min} to ${max}`);
    return n;
  },
});

export const port = (description: string, def?: number): EnvVar<number> => int(description, def, 1, 65535);

export const bool = (description: string, def: boolean): EnvVar<boolean> => ({
  description,
  default: String(def),
  parse(r) {
    const v = r.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw new Error('expected true or false');
  },
});

export const url = (description: string, protocols: string[], def?: string): EnvVar<string> => ({
  description,
  default: def,
  parse(r) {
    let u: URL;
    try {
      u = new URL(r);
    } catch {
      throw new Error(`expected a URL like ${protocols[0]}//host:port`);
    }
    if (!protocols.includes(u.protocol)) throw new Error(`expected a ${protocols.join(' or ')} URL`);
    return r;
  },
});

export const oneOf = <T extends string>(description: string, values: readonly T[], def: T): EnvVar<T> => ({
  description,
  default: def,
  parse(r) {
    if (!(values as readonly string[]).includes(r)) throw new Error(`expected one of ${values.join(', ')}`);
    return r as T;
  },
});

export const absPath = (description: string, def?: string): EnvVar<string> => ({
  description,
  default: def,
  parse(r) {
    if (!r.startsWith('/')) throw new Error('expected an absolute path');
    if (/[\0\n]/.test(r)) throw new Error('must not contain NUL or newline');
    return r.replace(/\/+$/, '') || '/';
  },
});

/** An absolute path, or empty for "not set". */
export const optionalAbsPath = (description: string): EnvVar<string> => ({
  description,
  default: '',
  parse(r) {
    if (r === '') return '';
    return absPath(description).parse(r);
  },
});

/** A duration like 90s, 15m, 1h or plain milliseconds. */
export const duration = (description: string, def: string): EnvVar<number> => ({
  description,
  default: def,
  parse(r) {
    const m = /^(\d+)(ms|s|m|h)?$/.exec(r.trim());
    if (!m) throw new Error('expected a duration like 500ms, 30s, 15m or 1h');
    const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
    return Number(m[1]) * mult;
  },
});

/** An IPv4 or IPv6 address (no host names: a listening address must not depend on DNS). */
export const ipAddress = (description: string, def?: string): EnvVar<string> => ({
  description,
  default: def,
  parse(r) {
    const v = r.trim();
    if (isIP(v) === 0) throw new Error('expected an IP address (e.g. 127.0.0.1 or ::1)');
    return v;
  },
});

/** An inclusive port range FIRST-LAST. */
export const portRange = (description: string, def: string): EnvVar<{ first: number; last: number }> => ({
  description,
  default: def,
  parse(r) {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(r.trim());
    if (!m) throw new Error('expected FIRST-LAST (e.g. 10810-10999)');
    const [first, last] = [Number(m[1]), Number(m[2])];
    for (const n of [first, last]) if (n < 1 || n > 65535) throw new Error(`port ${n} is outside 1-65535`);
    if (first > last) throw new Error(`first port ${first} is above last port ${last}`);
    return { first, last };
  },
});

/**
 * An absolute directory that ends up in config files and argument lists of
 * other programs: no blanks, quotes, shell or list characters; normalized,
 * without a trailing slash.
 */
function safeDir(raw: string): string {
  if (!isAbsolute(raw)) throw new Error(`"${raw}" is not an absolute path`);
  if (/[\s[\]=#%,"'`$\\;&|<>*?\0]/.test(raw)) throw new Error(`"${raw}" contains a character that is not allowed`);
  const n = normalize(raw);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

export const safeDirPath = (description: string, def?: string): EnvVar<string> => ({ description, default: def, parse: (r) => safeDir(r.trim()) });

/** Empty (the default) means not set: null. */
export const optionalSafeDirPath = (description: string): EnvVar<string | null> => ({
  description,
  default: '',
  parse: (r) => (r.trim() === '' ? null : safeDir(r.trim())),
});

/** Colon-separated safe directories, at least one, never "/" (that would allow everything). */
export const safeDirList = (description: string, def: string): EnvVar<string[]> => ({
  description,
  default: def,
  parse(r) {
    const dirs = r
      .trim()
      .split(':')
      .filter((d) => d !== '')
      .map(safeDir);
    if (dirs.length === 0) throw new Error('no directory given');
    if (dirs.includes('/')) throw new Error('"/" would allow every file');
    return dirs;
  },
});
