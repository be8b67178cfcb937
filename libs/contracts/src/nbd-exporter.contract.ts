/**
 * Request/reply contract of the nbd-exporter service (@nestjs/microservices,
 * TCP transport). The exporter is the only process that runs NBD servers;
 * backup-worker and restore-service ask it for exports through these messages
 * (see NbdExporterClient in ./nbd-exporter.client.ts, which imports this
 * file; this file imports nothing).
 */

export const NBD_EXPORTER_PATTERNS = {
  createExport: 'nbd-exporter.createExport',
  removeExport: 'nbd-exporter.removeExport',
  listExports: 'nbd-exporter.listExports',
  getExport: 'nbd-exporter.getExport',
} as const;

export type NbdExporterPattern = (typeof NBD_EXPORTER_PATTERNS)[keyof typeof NBD_EXPORTER_PATTERNS];

/**
 * What is exported. The caller says it explicitly: probing the format of a raw
 * disk image is unsafe (a guest can write a QCOW2 header into its own disk).
 * - qcow2: served by qemu-nbd (format-aware), the backup target / restore source
 * - raw:   a raw image file, served by nbd-server
 * - block: a block device, served by nbd-server
 */
export type NbdExportKind = 'qcow2' | 'raw' | 'block';
export type NbdServerKind = 'qemu-nbd' | 'nbd-server';
export type NbdExportState = 'starting' | 'active' | 'removing';

/** Parts of the export name `backup-{vmContextId}-disk{diskId}-{type}-{timestamp}`. */
export interface NbdExportNameParts {
  vmContextId: string;
  diskId: string | number;
  /** e.g. full, incr, restore, migrate. */
  type: string;
  /** Compact timestamp, e.g. 20251004T120000; defaults to now (UTC). */
  timestamp?: string;
}

export interface CreateNbdExportRequest extends NbdExportNameParts {
  kind: NbdExportKind;
  /** Absolute path of the image file or block device, under an allowed root. */
  filePath: string;
  /** Writable for a backup target; read-only (the default) for restore. */
  writable?: boolean;
  backupJobId?: string;
  /**
   * Instant access: the restore point (backup id) this export serves. The
   * export is recorded with it, so maintenance holds the chain against
   * delete and merge while the export lives. Only for kind qcow2.
   */
  restorePointId?: string;
  /**
   * Instant access, writable: export a fresh temporary QCOW2 overlay whose
   * backing file is filePath (qemu-img create -b filePath -F qcow2); writes
   * go to the overlay, the chain is only read; the overlay is deleted with
   * the export. Needs restorePointId; `writable` must not be set with it.
   */
  overlay?: boolean;
  /** Remove the export after this many seconds without a connected client (60-604800; default: never). */
  idleTimeoutSeconds?: number;
  /**
   * 'psk': the export takes only TLS clients holding its own pre-shared key
   * (qemu-nbd tls-creds-psk; the key is in the create answer only). Default:
   * the exporter's setting for restore exports (NBD_RESTORE_TLS).
   */
  tls?: 'psk' | 'none';
  /**
   * 'tcp' (the default): the export listens on NBD_LISTEN_ADDRESS and a port of
   * NBD_PORT_RANGE. 'unix': on a Unix socket in the exporter's state dir (0700,
   * or 0710 with the socket 0660 for NBD_SOCKET_GROUP): for a client on this
   * host, whom the file system lets in, without TCP or TLS. Only for kind
   * qcow2, not with tls 'psk' nor an idle timeout.
   */
  transport?: NbdTransport;
}

/** How an export is reached: a TCP port, or a Unix socket on the exporter's host. */
export type NbdTransport = 'tcp' | 'unix';

/** The pre-shared key of a TLS-PSK export (libnbd: nbds://IDENTITY@host:port/name?tls-psk-file=FILE, FILE holding "IDENTITY:KEY"). */
export interface NbdTlsPsk {
  identity: string;
  /** Hex, as in a keys.psk file. */
  key: string;
}

/**
 * What an export is, written once: the exporter's answers (NbdExportInfo) and
 * its table (libs/db NbdExportRecord) both extend it.
 */
export interface NbdExportFields {
  name: string;
  kind: NbdExportKind;
  server: NbdServerKind;
  filePath: string;
  writable: boolean;
  host: string;
  port: number | null;
  socketPath: string | null;
  nodeName: string;
  backupJobId: string | null;
  state: NbdExportState;
  /** Instant access: the restore point served, else null (maintenance holds it while the export lives). */
  restorePointId: string | null;
  /** Writable instant access: the temporary overlay clients write to (filePath is the restore point it sits on; deleted with the export). */
  overlayPath: string | null;
  idleTimeoutSeconds: number | null;
}

/** An export as the exporter answers it: the fields, with what a client needs to connect. */
export interface NbdExportInfo extends NbdExportFields {
  /** An NBD URI a client can open directly (nbd://host:port/name, nbd+unix:///name?socket=/path). */
  uri: string;
  /** Size of the disk as the client sees it (QCOW2 virtual size), bytes. */
  virtualSize: number;
  /** ISO 8601. */
  createdAt: string;
  /** True when the export is served over TLS (qemu-nbd --tls-creds). */
  tls: boolean;
  /** x509 (NBD_TLS_CREDS_DIR), psk (a key of its own) or null. */
  tlsMode: 'x509' | 'psk' | null;
  /** ISO 8601: the last time a client was seen connected (or the creation). */
  lastActiveAt: string;
  /** ISO 8601: when the export ends if no client connects before; null: never. */
  expiresAt: string | null;
  /** Only in the answer to createExport of a TLS-PSK export: the key clients need. */
  tlsPsk?: NbdTlsPsk;
}

export type CreateNbdExportResponse = NbdExportInfo;

export interface RemoveNbdExportRequest {
  name: string;
}
export interface RemoveNbdExportResponse {
  name: string;
  /** False when no such export existed (removal is idempotent). */
  removed: boolean;
}

export interface ListNbdExportsRequest {
  backupJobId?: string;
  restorePointId?: string;
  /** Only instant-access exports (those with a restorePointId). */
  restoreOnly?: boolean;
}
export interface ListNbdExportsResponse {
  exports: NbdExportInfo[];
}

export interface GetNbdExportRequest {
  name: string;
}
export interface GetNbdExportResponse {
  export: NbdExportInfo | null;
}

/**
 * Error codes carried in the RPC error payload:
 * - INVALID_ARGUMENT: bad name, path, kind (message says what is wrong)
 * - CONFLICT: the image is already exported writable, or the name exists
 * - NOT_FOUND: no such export (only where absence is an error)
 * - INTERNAL: a server failed to start; message carries its stderr
 */
export type NbdExporterErrorCode = 'INVALID_ARGUMENT' | 'CONFLICT' | 'NOT_FOUND' | 'INTERNAL';

export interface NbdExporterErrorPayload {
  code: NbdExporterErrorCode;
  message: string;
}

const ERROR_CODES: readonly string[] = ['INVALID_ARGUMENT', 'CONFLICT', 'NOT_FOUND', 'INTERNAL'];

/** True for an error payload of the exporter (not, e.g., a Node error with code ECONNREFUSED). */
export function isNbdExporterErrorPayload(value: unknown): value is NbdExporterErrorPayload {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof Error) &&
    ERROR_CODES.includes((value as { code?: unknown }).code as string) &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}
