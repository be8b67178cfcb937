/**
 * Shapes of the gateway's answers as the console reads them. Request paths,
 * query parameters and bodies are checked against the OpenAPI document by
 * the typed client (client.ts); the gateway documents most answers only in
 * words, so their fields are spelled out here.
 */

export type Role = 'admin' | 'operator' | 'viewer';
export type BackupType = 'full' | 'incremental' | 'differential';

export interface WhoAmI {
  id: string;
  name: string;
  role: Role;
}

export interface Repository {
  id: string;
  name: string;
  type: string;
  config: { path?: string } | null;
  enabled: boolean;
  storage_node: string;
  total_size_bytes: number;
  available_size_bytes: number;
  updated_at: string;
}

export interface RepositorySpace extends Repository {
  used_by_backups_bytes: number;
  measured: string;
}

export interface VmDisk {
  disk_id: number;
  device_key: number;
  label: string | null;
  capacity_bytes: number;
  last_change_id: string | null;
  last_backup_id: string | null;
}

export interface Vm {
  context_id: string;
  vm_name: string;
  vcenter_id: string;
  moref: string;
  instance_uuid: string | null;
  cbt_enabled: boolean;
  cbt_state: string | null;
  disks: VmDisk[];
}

export interface Backup {
  id: string;
  run_id: string | null;
  vm_context_id: string;
  vm_name: string;
  disk_id: number;
  backup_type: BackupType;
  requested_type: BackupType | null;
  fallback_reason: string | null;
  status: 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
  repository_id: string | null;
  repository_path: string;
  parent_backup_id: string | null;
  bytes_transferred: number;
  total_bytes: number;
  virtual_size_bytes: number | null;
  allocated_bytes: number | null;
  checksum: string | null;
  error_message: string | null;
  verified_at: string | null;
  verify_status: string | null;
  /** Set when an audit or a verification found the chain damaged (newer gateways). */
  suspect?: boolean | null;
  suspect_reason?: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

export interface BackupList {
  total: number;
  items: Backup[];
}

export interface Chain {
  disk_id: number;
  full_backup_id: string;
  latest_backup_id: string;
  total_backups: number;
  total_size_bytes: number;
  virtual_size_bytes: number;
  restore_points: Backup[];
}

export interface VmChains {
  vm_context_id: string;
  vm_name: string;
  chains: Chain[];
}

export interface DiskProgress {
  diskId: number;
  bytesDone: number;
  bytesTotal: number;
  phase: string;
}

export interface JobProgress {
  phase: string;
  bytesDone: number;
  bytesTotal: number;
  bytesSkippedZero: number;
  rateBytesPerSec: number;
  disks: DiskProgress[];
  message?: string;
}

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'unknown';

export interface JobEvent {
  at: string;
  level: string;
  phase: string;
  message: string;
}

export interface JobStatus {
  run_id: string;
  vm_context_id: string;
  status: JobState;
  attempts_made: number | null;
  queued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  progress: JobProgress | number | null;
  error: string | null;
  backups: Backup[];
  events: JobEvent[];
}

/** One server-sent `progress` event. */
export interface ProgressEvent {
  run_id: string;
  status: JobState;
  progress: JobProgress | number | null;
  error: string | null;
}

export interface StartedBackup {
  run_id: string;
  vm_context_id: string;
  vm_name: string;
  backup_type: BackupType;
  repository: string;
  status: string;
}

export interface Partition {
  /** The directory of the partition in the mount ("p1", ...). */
  name: string;
  fsType: string | null;
  mounted: boolean;
  error?: string;
  [k: string]: unknown;
}

export interface Mount {
  mount_id: string;
  backup_id: string | null;
  mount_path: string;
  created_at: string;
  last_access_at: string;
  partition_table: string | null;
  partitions: Partition[];
}

export interface FileEntry {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** Octal permission bits as the gateway sends them ("0644"); same shape as libs/contracts FileEntry. */
  mode: string;
  mtime: string;
  symlinkTarget?: string;
  nameNotUtf8?: boolean;
}

export interface ListPage {
  path: string;
  entries: FileEntry[];
  offset: number;
  limit: number;
  total: number;
}

export interface VCenter {
  id: string;
  name: string;
  url: string;
  username: string;
  insecure: boolean;
  thumbprint: string | null;
  disk_reader: unknown;
  created_at: string;
}

export interface ImportedVm {
  vm_name: string;
  context_id: string;
  disks: number;
}

export interface RetentionPolicy {
  id: string;
  repository_id: string;
  vm_context_id: string | null;
  keep_last: number;
  daily: number;
  weekly: number;
  monthly: number;
}

export interface ApiKey {
  id: string;
  name: string;
  role: Role;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface CreatedApiKey {
  id: string;
  name: string;
  role: Role;
  key: string;
}

export interface VerifyResult {
  ok: boolean;
  [k: string]: unknown;
}
