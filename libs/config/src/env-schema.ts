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
      problems.push(`${name}=${JSON.stringify(raw)} is invalid: ${(err as Error).message}`);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return out as EnvValues<S>;
}

// Parsers ------------------------------------------------------------------

export const str = (description: string, def?: string): EnvVar<string> => ({ description, default: def, parse: (r) => r });

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
