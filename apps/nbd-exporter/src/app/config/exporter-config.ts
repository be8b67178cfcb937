import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { isAbsolute, normalize } from 'node:path';

/** Configuration of the exporter, read once from the environment at start. */
export interface ExporterConfig {
  /** Where the Nest TCP microservice listens for requests. */
  rpcHost: string;
  rpcPort: number;
  /** Address the NBD servers listen on (loopback unless exports are remote). */
  listenAddress: string;
  /** Inclusive TCP port range handed out to NBD servers. */
  portRange: { first: number; last: number };
  /** Config files, pid files and the record file live here. */
  stateDir: string;
  /** Exported paths must resolve under one of these directories. */
  allowedRoots: string[];
  nodeName: string;
  /** Directory with ca-cert.pem, server-cert.pem, server-key.pem: qemu-nbd exports use TLS. */
  tlsCredsDir: string | null;
  /** Instant-access (restore) exports: 'psk' gives each its own TLS pre-shared key; 'none' serves plain NBD. */
  restoreTls: 'psk' | 'none';
  /** How often idle instant-access exports are looked for, milliseconds. */
  idleSweepMs: number;
  /** Where export records live: the database (nbd_exports) or a JSON file in the state dir. */
  recordStore: 'database' | 'file';
  databaseUrl: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

function port(variable: string, raw: string): number {
  if (!/^\d{1,5}$/.test(raw)) throw new ConfigError(variable, `"${raw}" is not a port number`);
  const n = Number(raw);
  if (n < 1 || n > 65535) throw new ConfigError(variable, `${n} is outside 1-65535`);
  return n;
}

function absoluteDir(variable: string, raw: string): string {
  if (!isAbsolute(raw)) throw new ConfigError(variable, `"${raw}" is not an absolute path`);
  // These paths end up in config files and argument lists: refuse anything odd.
  if (/[\s[\]=#%,"'`$\\;&|<>*?]/.test(raw)) throw new ConfigError(variable, `"${raw}" contains a character that is not allowed`);
  const n = normalize(raw);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function address(variable: string, raw: string): string {
  if (isIP(raw) === 0) throw new ConfigError(variable, `"${raw}" is not an IP address`);
  return raw;
}

// The last settings loader outside libs/config: its move into the libs/config schema
// (nbdExporterEnv) is written but not landed yet (issue 13 closing note).
// eslint-disable-next-line no-restricted-properties
export function loadExporterConfig(env: NodeJS.ProcessEnv = process.env): ExporterConfig {
  const get = (name: string, fallback: string): string => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? fallback : v.trim();
  };

  const rangeRaw = get('NBD_PORT_RANGE', '10810-10999');
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(rangeRaw);
  if (!m) throw new ConfigError('NBD_PORT_RANGE', `"${rangeRaw}" is not FIRST-LAST (e.g. 10810-10999)`);
  const first = port('NBD_PORT_RANGE', m[1]);
  const last = port('NBD_PORT_RANGE', m[2]);
  if (first > last) throw new ConfigError('NBD_PORT_RANGE', `first port ${first} is above last port ${last}`);

  const rootsRaw = get('NBD_ALLOWED_ROOTS', '/var/lib/sendense');
  const allowedRoots = rootsRaw
    .split(':')
    .filter((r) => r !== '')
    .map((r) => absoluteDir('NBD_ALLOWED_ROOTS', r));
  if (allowedRoots.length === 0) throw new ConfigError('NBD_ALLOWED_ROOTS', 'no directory given');
  if (allowedRoots.includes('/')) throw new ConfigError('NBD_ALLOWED_ROOTS', '"/" would allow exporting any file');

  const nodeName = get('NODE_NAME', hostname());
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(nodeName)) {
    throw new ConfigError('NODE_NAME', `"${nodeName}" must be 1-128 letters, digits, dot, dash or underscore`);
  }

  const tlsRaw = get('NBD_TLS_CREDS_DIR', '');

  const restoreTls = get('NBD_RESTORE_TLS', 'none');
  if (restoreTls !== 'psk' && restoreTls !== 'none') throw new ConfigError('NBD_RESTORE_TLS', `"${restoreTls}" is not one of psk, none`);
  const sweepRaw = get('NBD_IDLE_SWEEP_SECONDS', '15');
  if (!/^\d{1,5}$/.test(sweepRaw) || Number(sweepRaw) < 1) throw new ConfigError('NBD_IDLE_SWEEP_SECONDS', `"${sweepRaw}" is not a whole number of seconds (1 or more)`);

  const recordStore = get('NBD_RECORD_STORE', 'database');
  if (recordStore !== 'database' && recordStore !== 'file') {
    throw new ConfigError('NBD_RECORD_STORE', `"${recordStore}" is not one of database, file`);
  }
  const databaseUrl = get('DATABASE_URL', 'mysql://root@127.0.0.1:3306/sendense');
  if (!/^(mysql|mariadb):\/\/[^\s]+$/.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must be a mysql:// or mariadb:// URL');
  }

  return {
    rpcHost: address('NBD_EXPORTER_HOST', get('NBD_EXPORTER_HOST', '127.0.0.1')),
    rpcPort: port('NBD_EXPORTER_PORT', get('NBD_EXPORTER_PORT', '8091')),
    listenAddress: address('NBD_LISTEN_ADDRESS', get('NBD_LISTEN_ADDRESS', '127.0.0.1')),
    portRange: { first, last },
    stateDir: absoluteDir('NBD_STATE_DIR', get('NBD_STATE_DIR', '/var/lib/sendense/nbd')),
    allowedRoots,
    nodeName,
    tlsCredsDir: tlsRaw === '' ? null : absoluteDir('NBD_TLS_CREDS_DIR', tlsRaw),
    restoreTls,
    idleSweepMs: Number(sweepRaw) * 1000,
    recordStore,
    databaseUrl,
  };
}
