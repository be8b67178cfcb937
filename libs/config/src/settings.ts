import { hostname } from 'node:os';
import {
  absPath,
  bool,
  ConfigError,
  duration,
  int,
  loadEnv,
  name,
  oneOf,
  optionalAbsPath,
  port,
  str,
  url,
  ipAddress,
  portRange,
  safeDirPath,
  safeDirList,
  optionalSafeDirPath,
  type EnvValues,
} from './env-schema';

/**
 * Every environment variable the product reads. Each service validates the
 * groups it uses at start (so the gateway does not need nbd-server settings).
 */
export const commonEnv = {
  DATABASE_URL: url('MariaDB/MySQL database', ['mysql:', 'mariadb:'], 'mysql://root@127.0.0.1:3306/sendense'),
  REDIS_URL: url('Redis for the job queues', ['redis:', 'rediss:'], 'redis://127.0.0.1:6379'),
  QUEUE_PREFIX: name(
    'Prefix of every queue key in Redis (1-64 letters, digits, - or _): installs (or test systems) sharing one Redis stay apart by it; the same on every service of one install',
    'sendense',
  ),
  NODE_NAME: str('Name of this storage node (workers take only the jobs of repositories on their node)', hostname()),
  LOG_LEVEL: oneOf('Log level', ['error', 'warn', 'log', 'debug', 'verbose'] as const, 'log'),
  SENDENSE_INTERNAL_TOKEN: str(
    'Per-install secret every internal call carries (nbd-exporter, restore-service, Capture Agent refuse calls without it; scripts/setup.sh makes it; never logged)',
    '',
  ),
};

export const gatewayEnv = {
  GATEWAY_PORT: port('HTTP port of the API gateway', 8080),
  GATEWAY_HOST: str('Address the API gateway listens on (loopback unless set; another address without TLS gets a warning at start)', '127.0.0.1'),
  GATEWAY_TLS_CERT: optionalAbsPath('PEM certificate (chain) file: the gateway serves HTTPS when this and GATEWAY_TLS_KEY are set'),
  GATEWAY_TLS_KEY: optionalAbsPath('PEM private key file of GATEWAY_TLS_CERT'),
  GATEWAY_ALLOWED_ORIGINS: str(
    "Comma-separated extra origins (https://host:port) whose browser pages may send state-changing requests (the gateway's own origin always may)",
    '',
  ),
  GATEWAY_AUTH_FAILURES_PER_MINUTE: int(
    'Failed authentications one client address may make per minute before it is refused (429) for a minute',
    10,
    1,
    100_000,
  ),
  REPOSITORY_ALLOWED_ROOTS: str(
    'Colon-separated directories local repositories may be created in (symlinks resolved; keep equal to NBD_ALLOWED_ROOTS and RESTORE_ALLOWED_ROOTS)',
    '/var/lib/sendense',
  ),
  GATEWAY_EXPENSIVE_CALLS_PER_MINUTE: int('Backups and mounts one API key may start per minute', 30, 1, 100_000),
  RESTORE_MAX_MOUNTS_PER_KEY: int(
    'Mounts one API key may hold at once (a mount of a restore point already mounted is shared and does not count again); 0: no limit',
    8,
    0,
    10_000,
  ),
  RESTORE_SERVICE_URL: url('Internal URL of the restore-service', ['http:', 'https:'], 'http://127.0.0.1:8092'),
  NBD_EXPORTER_URL: url('Internal address of the nbd-exporter (tcp://host:port)', ['tcp:'], 'tcp://127.0.0.1:8091'),
  CAPTURE_AGENT_URL: url('Internal address of the Capture Agent (tcp://host:port)', ['tcp:'], 'tcp://127.0.0.1:8093'),
  SENDENSE_SECRET_KEY: str('Key (any length, kept secret) that encrypts stored vCenter passwords and webhook secrets', ''),
  AUDIT_RETENTION_DAYS: int('Days the audit log keeps an entry (older ones are removed daily)', 90, 1, 36_500),
};

/** Port of a loopback-only /metrics listener (0: none). */
const metricsPort = (service: string, def: number) => int(`Port of the ${service}'s Prometheus /metrics listener on 127.0.0.1 (0: none)`, def, 0, 65535);

export const workerEnv = {
  BACKUP_CONCURRENCY: int('Backups one worker runs at once', 2, 1, 64),
  NBD_TARGET_TLS: oneOf(
    'Backup-target exports (and the restore point a disk restore reads): psk asks the nbd-exporter for a TLS pre-shared key of its own for each export, handed to the Capture Agent in the copy request only; none serves plain NBD that any local process could open',
    ['psk', 'none'] as const,
    'psk',
  ),
  NBD_TARGET_TRANSPORT: oneOf(
    'How the Capture Agent reaches backup targets (and the restore point a disk restore reads): unix, a Unix socket of the nbd-exporter (no TCP, no TLS: the file system decides who may connect; the Capture Agent must be on this host and allowed by NBD_SOCKET_GROUP); tcp, a port (with NBD_TARGET_TLS); auto, unix when NBD_EXPORTER_URL and CAPTURE_AGENT_URL are both loopback addresses, else tcp',
    ['auto', 'unix', 'tcp'] as const,
    'auto',
  ),
  CBT_AUDIT_SAMPLES: int(
    "CBT audit: blocks CBT reported unchanged compared between snapshot and new restore point after each incremental disk (0: off; a repository's cbt_audit_samples overrides)",
    16,
    0,
    4096,
  ),
  NBD_EXPORTER_URL: gatewayEnv.NBD_EXPORTER_URL,
  CAPTURE_AGENT_URL: gatewayEnv.CAPTURE_AGENT_URL,
  SENDENSE_SECRET_KEY: gatewayEnv.SENDENSE_SECRET_KEY,
  REPOSITORY_ALLOWED_ROOTS: gatewayEnv.REPOSITORY_ALLOWED_ROOTS,
  WORKER_METRICS_PORT: metricsPort('backup-worker', 9464),
  ALERT_REPOSITORY_USED_PERCENT: int('Webhook event repository.space when a repository file system is fuller than this (percent)', 90, 1, 100),
  ALERT_CHECK_EVERY: duration('How often the repository space and stale VM checks run', '5m'),
  POLICY_RUN_CONCURRENCY: int('Policy runs one worker drives at once (each waits for its VM backups)', 4, 1, 64),
  LOCK_SWEEP_EVERY: duration("How often the worker removes lock files of dead processes from its repositories' .locks/ (also at start)", '10m'),
};

export const restoreEnv = {
  RESTORE_SERVICE_PORT: port('HTTP port of the restore-service (loopback by default)', 8092),
  RESTORE_SERVICE_HOST: str('Address the restore-service listens on', '127.0.0.1'),
  RESTORE_MOUNT_ROOT: absPath('Where restore points are mounted', '/mnt/sendense'),
  RESTORE_STATE_DIR: absPath('State of active mounts (for cleanup after a crash)', '/var/lib/sendense/restore'),
  RESTORE_IMAGE_DIR: optionalAbsPath(
    'Scratch space of whole-disk image downloads (qcow2/vmdk conversions; checked for free space before each); default <RESTORE_STATE_DIR>/images',
  ),
  RESTORE_MAX_MOUNTS: int('Most restore points mounted at once on this node (each holds a qemu-storage-daemon and loop devices); 0: no limit', 32, 0, 10_000),
  RESTORE_IDLE_TIMEOUT: duration('Unmount a restore point after this long without access', '1h'),
  RESTORE_BLOCK_BACKEND: oneOf('How a chain becomes a block device (auto: nbd when /dev/nbd0 exists)', ['auto', 'fuse-loop', 'nbd'] as const, 'auto'),
  RESTORE_METRICS_PORT: metricsPort('restore-service', 9467),
  RESTORE_ALLOWED_ROOTS: str('Colon-separated directories restore points may be mounted from (the repositories)', '/var/lib/sendense'),
};

export const captureAgentEnv = {
  CAPTURE_AGENT_HOST: str('Address the Capture Agent listens on', '127.0.0.1'),
  CAPTURE_AGENT_PORT: port('Port the Capture Agent listens on', 8093),
  CAPTURE_DISK_PARALLELISM: int('Disks of one VM copied at once', 2, 1, 16),
  CAPTURE_AGENT_METRICS_PORT: metricsPort('Capture Agent', 9466),
  CAPTURE_ALLOW_ENABLE_CBT: bool('Enable CBT on a VM that has it off (the first backup after that is full)', true),
  CAPTURE_SOURCE_RETRIES: int(
    'Reconnects one disk copy may make when its NBD connection to the snapshot (or to the target) drops, 200 ms apart doubling up to 5 s; the copy resumes where it was (at most the requests in flight, 16 MiB, are read again); when they run out the copy fails naming the NBD source and the cause (0: fail at the first drop)',
    5,
    0,
    100,
  ),
  CAPTURE_SESSION_LEASE: int(
    'Lease of a backup session, seconds: the worker renews it every quarter of this; when nobody does (worker killed) the agent stops the copy and removes the snapshot',
    20,
    2,
    3600,
  ),
};

export const nbdExporterEnv = {
  NBD_EXPORTER_HOST: ipAddress('Address the nbd-exporter listens on for requests (Nest TCP)', '127.0.0.1'),
  NBD_EXPORTER_PORT: port('Port the nbd-exporter listens on for requests', 8091),
  NBD_LISTEN_ADDRESS: ipAddress('Address the NBD servers listen on (loopback unless exports are read from other hosts)', '127.0.0.1'),
  NBD_PORT_RANGE: portRange('Inclusive TCP port range handed out to NBD servers', '10810-10999'),
  NBD_STATE_DIR: safeDirPath('Config files, pid files and the record file of the NBD servers', '/var/lib/sendense/nbd'),
  NBD_ALLOWED_ROOTS: safeDirList('Colon-separated directories exported images must resolve under (the repositories)', '/var/lib/sendense'),
  NBD_TLS_CREDS_DIR: optionalSafeDirPath('Directory with ca-cert.pem, server-cert.pem, server-key.pem: qemu-nbd exports use TLS (nbds:// URIs) when set'),
  NBD_RESTORE_TLS: oneOf(
    'Instant-access (restore) exports: psk gives each its own TLS pre-shared key, none serves plain NBD',
    ['psk', 'none'] as const,
    'none',
  ),
  NBD_SOCKET_GROUP: str(
    "Group (name or gid) whose members may connect to the exporter's Unix-socket exports (the Capture Agent's, when it runs as another user than the exporter); empty: only the exporter's own user and root",
    '',
  ),
  NBD_IDLE_SWEEP_SECONDS: int('How often idle instant-access exports are looked for, seconds', 15, 1, 99_999),
  NBD_RECORD_STORE: oneOf('Where export records live: the database (nbd_exports) or a JSON file in NBD_STATE_DIR', ['database', 'file'] as const, 'database'),
  NBD_EXPORTER_METRICS_PORT: metricsPort('nbd-exporter', 9465),
};

export const cliEnv = {
  SENDENSE_API_URL: url('API gateway the CLI talks to', ['http:', 'https:'], 'http://127.0.0.1:8080'),
  SENDENSE_API_KEY: str('API key the CLI sends', ''),
};

export type CommonSettings = EnvValues<typeof commonEnv>;
export type GatewaySettings = EnvValues<typeof commonEnv & typeof gatewayEnv>;
export type WorkerSettings = EnvValues<typeof commonEnv & typeof workerEnv>;
export type RestoreSettings = EnvValues<typeof commonEnv & typeof restoreEnv>;
export type CaptureAgentSettings = EnvValues<typeof commonEnv & typeof captureAgentEnv>;
export type NbdExporterSettings = EnvValues<typeof commonEnv & typeof nbdExporterEnv>;

export const loadGatewaySettings = (env = process.env): GatewaySettings => loadEnv({ ...commonEnv, ...gatewayEnv }, env);
export const loadWorkerSettings = (env = process.env): WorkerSettings => loadEnv({ ...commonEnv, ...workerEnv }, env);
export const loadRestoreSettings = (env = process.env): RestoreSettings => loadEnv({ ...commonEnv, ...restoreEnv }, env);
export const loadCaptureAgentSettings = (env = process.env): CaptureAgentSettings => loadEnv({ ...commonEnv, ...captureAgentEnv }, env);

/**
 * The CLI's environment as it is: sendense-ctl resolves flags, then these
 * variables (cliEnv), then its config file itself, so it needs to know which
 * were set (HOME and XDG_CONFIG_HOME locate the config file).
 */
export const cliEnvironment = (env = process.env): Readonly<Record<string, string | undefined>> => env;

/**
 * The internal token a service that serves internal calls needs: refuses to
 * start without one (at least 16 characters), so no internal endpoint is ever open.
 */
export function loadInternalToken(env = process.env): string {
  const token = env['SENDENSE_INTERNAL_TOKEN'] ?? '';
  if (token.length < 16) {
    throw new ConfigError([
      `SENDENSE_INTERNAL_TOKEN is ${token ? 'shorter than 16 characters' : 'not set'}: internal endpoints would be open to any local process. ` +
        'Run scripts/setup.sh (it writes one to .sendense/env) or set the same random value for every service.',
    ]);
  }
  return token;
}

/** The nbd-exporter writes NODE_NAME into records and file names: it must be a plain name. */
export function loadNbdExporterSettings(env = process.env): NbdExporterSettings {
  const settings = loadEnv({ ...commonEnv, ...nbdExporterEnv }, env);
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(settings.NODE_NAME)) {
    throw new ConfigError([`NODE_NAME=${JSON.stringify(settings.NODE_NAME)} is invalid: expected 1-128 letters, digits, dot, dash or underscore`]);
  }
  const group = settings.NBD_SOCKET_GROUP.trim();
  if (group !== '' && !/^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}|\d{1,10})$/.test(group)) {
    throw new ConfigError([
      `NBD_SOCKET_GROUP=${JSON.stringify(settings.NBD_SOCKET_GROUP)} is invalid: expected a group name (letters, digits, _ . -) or a numeric gid`,
    ]);
  }
  return { ...settings, NBD_SOCKET_GROUP: group };
}

/** All groups, for documentation. */
export const allEnvGroups = {
  'all services': commonEnv,
  'api-gateway': gatewayEnv,
  'backup-worker': workerEnv,
  'restore-service': restoreEnv,
  'capture-agent': captureAgentEnv,
  'nbd-exporter': nbdExporterEnv,
  'sendense-ctl': cliEnv,
};

/** host and port of a tcp://host:port URL. */
export function tcpAddress(u: string): { host: string; port: number } {
  const parsed = new URL(u);
  return { host: parsed.hostname, port: Number(parsed.port) };
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

/**
 * The transport of backup-target (and disk-restore source) exports: NBD_TARGET_TRANSPORT,
 * with auto resolved to unix when the nbd-exporter and the Capture Agent are both
 * reached on loopback (so both run on the worker's host), else tcp.
 */
export function targetTransport(s: Pick<WorkerSettings, 'NBD_TARGET_TRANSPORT' | 'NBD_EXPORTER_URL' | 'CAPTURE_AGENT_URL'>): 'unix' | 'tcp' {
  if (s.NBD_TARGET_TRANSPORT !== 'auto') return s.NBD_TARGET_TRANSPORT;
  return isLoopback(new URL(s.NBD_EXPORTER_URL).hostname) && isLoopback(new URL(s.CAPTURE_AGENT_URL).hostname) ? 'unix' : 'tcp';
}
