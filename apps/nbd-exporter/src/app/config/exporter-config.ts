import { loadNbdExporterSettings, type NbdExporterSettings } from '@sendense/config';

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
  /** Group (name or gid) allowed to connect to Unix-socket exports; null: only this user and root. */
  socketGroup: string | null;
  /** Instant-access (restore) exports: 'psk' gives each its own TLS pre-shared key; 'none' serves plain NBD. */
  restoreTls: 'psk' | 'none';
  /** How often idle instant-access exports are looked for, milliseconds. */
  idleSweepMs: number;
  /** Where export records live: the database (nbd_exports) or a JSON file in the state dir. */
  recordStore: 'database' | 'file';
  databaseUrl: string;
  /** Loopback port of the Prometheus /metrics listener; 0: none. */
  metricsPort: number;
}

/**
 * The exporter's settings, read by libs/config (nbdExporterEnv: one
 * definition with parser, default and description, also the README table)
 * and shaped for the exporter's code.
 */
export function loadExporterConfig(env?: NodeJS.ProcessEnv): ExporterConfig {
  return exporterConfigOf(loadNbdExporterSettings(env));
}

export function exporterConfigOf(s: NbdExporterSettings): ExporterConfig {
  return {
    rpcHost: s.NBD_EXPORTER_HOST,
    rpcPort: s.NBD_EXPORTER_PORT,
    listenAddress: s.NBD_LISTEN_ADDRESS,
    portRange: s.NBD_PORT_RANGE,
    stateDir: s.NBD_STATE_DIR,
    allowedRoots: s.NBD_ALLOWED_ROOTS,
    nodeName: s.NODE_NAME,
    tlsCredsDir: s.NBD_TLS_CREDS_DIR,
    restoreTls: s.NBD_RESTORE_TLS,
    socketGroup: s.NBD_SOCKET_GROUP || null,
    idleSweepMs: s.NBD_IDLE_SWEEP_SECONDS * 1000,
    recordStore: s.NBD_RECORD_STORE,
    databaseUrl: s.DATABASE_URL,
    metricsPort: s.NBD_EXPORTER_METRICS_PORT,
  };
}
