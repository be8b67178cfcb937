/**
 * HTTP contract of the restore-service (internal, loopback; the gateway
 * authenticates and proxies). The service side is RestoreController in
 * libs/restore (routes below) plus the health route of apps/restore-service;
 * the typed client is RestoreServiceClient in ./restore-service.client.ts.
 *
 * These shapes are the one definition: libs/restore's MountManager and
 * FileBrowser return them, the gateway reads them.
 */

/** How the chain became a block device: qemu-storage-daemon FUSE file + loop, or qemu-nbd + /dev/nbdN. */
export type BlockMode = 'fuse' | 'nbd';

export interface PartitionInfo {
  name: string;
  index: number | null;
  offsetBytes: number;
  sizeBytes: number;
  fsType: string | null;
  mounted: boolean;
  /** Host directory of the mounted filesystem. */
  hostPath?: string;
  /** Why it is not mounted. */
  error?: string;
}

export interface MountInfo {
  mountId: string;
  imagePath: string;
  /** Image files of the chain, top first. */
  chain: string[];
  mode: BlockMode;
  /** Host directory of the mount: <mountRoot>/<mountId>. */
  root: string;
  /** ISO 8601. */
  createdAt: string;
  lastAccessAt: string;
  activeStreams: number;
  partitionTable: string | null;
  partitions: PartitionInfo[];
}

/** Body of POST /restore/mount. */
export interface MountRequestBody {
  /** Absolute path of the top image (or give chain). */
  imagePath?: string;
  /** The chain the caller expects, top first: the mount is refused when the image's backing chain differs. */
  chain?: string[];
  /** A UUID; generated when absent. */
  mountId?: string;
  /** Return an existing mount of the same restore point instead of mounting again. */
  reuse?: boolean;
}

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface FileEntry {
  name: string;
  /**
   * Mount-relative path ('/'-separated, no leading '/', '' for the root): the
   * form every method accepts back.
   */
  path: string;
  type: EntryType;
  size: number;
  /** Permission bits (mode & 0o7777) in octal, as ls and chmod write them: "0644", "4755". */
  mode: string;
  mtime: string;
  symlinkTarget?: string;
  /** The on-disk name is not valid UTF-8 (name shows replacement characters). */
  nameNotUtf8?: boolean;
}

export interface ListPage {
  path: string;
  entries: FileEntry[];
  offset: number;
  limit: number;
  total: number;
}

/** A mount whose file system or export vanished under the restore-service (kept 15 minutes, for health). */
export interface LostMount {
  mountId: string;
  imagePath: string;
  problems: string[];
  at: string;
}

export interface ListMountsResponse {
  mounts: MountInfo[];
  /** Mounts lost recently (unmounted from outside, export daemon killed); they are cleaned up and no longer listed. */
  lost?: LostMount[];
}

export interface ImagesInUseResponse {
  images: string[];
}

export interface RestoreServiceHealth {
  ok: boolean;
  node: string;
  mountRoot: string;
}

/** JSON body of every error answer (RestoreErrorFilter, Nest's HttpException). */
export interface RestoreServiceErrorBody {
  statusCode: number;
  /** A RestoreError code (PATH_REJECTED, MOUNT_NOT_FOUND, ...) or the HTTP reason. */
  error?: string;
  message: string | string[];
}

/** Query of GET /restore/:mountId/files. offset and limit may be passed through as text: the service validates them (400). */
export interface ListFilesQuery {
  path?: string;
  offset?: number | string;
  limit?: number | string;
}

/** Formats of a whole-disk image download. */
export type DiskImageFormat = 'raw' | 'qcow2' | 'vmdk';

/** Query of GET /images/download. */
export interface ImageDownloadQuery {
  imagePath: string;
  format: DiskImageFormat;
  /** Content-Disposition file name (letters, digits, ._-). */
  fileName?: string;
  /** The chain the caller expects, top first. */
  chain?: string[];
}

/** Route paths, relative to RESTORE_SERVICE_URL. Ids and paths are encoded here, never by callers. */
export const RESTORE_SERVICE_ROUTES = {
  health: () => '/internal/health',
  mount: () => '/restore/mount',
  list: () => '/restore',
  imagesInUse: () => '/restore/images-in-use',
  get: (mountId: string) => `/restore/${encodeURIComponent(mountId)}`,
  unmount: (mountId: string) => `/restore/${encodeURIComponent(mountId)}`,
  files: (mountId: string, query: ListFilesQuery = {}) =>
    `/restore/${encodeURIComponent(mountId)}/files${queryString({ path: query.path, offset: query.offset, limit: query.limit })}`,
  stat: (mountId: string, path: string) => `/restore/${encodeURIComponent(mountId)}/stat${queryString({ path })}`,
  download: (mountId: string, path: string) => `/restore/${encodeURIComponent(mountId)}/download${queryString({ path })}`,
  archive: (mountId: string, path: string) => `/restore/${encodeURIComponent(mountId)}/archive${queryString({ path })}`,
  image: (q: ImageDownloadQuery) =>
    `/images/download${queryString({ imagePath: q.imagePath, format: q.format, fileName: q.fileName, chain: q.chain?.join('\n') })}`,
} as const;

function queryString(params: Record<string, string | number | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}
