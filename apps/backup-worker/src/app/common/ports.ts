import type {
  CancelResponse,
  CopyDisksRequest,
  CopyEvent,
  CreateNbdExportRequest,
  DiskCopyResult,
  NbdExportInfo,
  PrepareBackupRequest,
  PrepareBackupResponse,
  ReleaseResponse,
} from '@sendense/contracts';

/** What the backup workflow needs from the Capture Agent. */
export interface CaptureAgentPort {
  prepare(req: PrepareBackupRequest): Promise<PrepareBackupResponse>;
  /** Resolves with the per-disk results of the final 'done' event. */
  copy(req: CopyDisksRequest, onProgress: (e: Extract<CopyEvent, { type: 'progress' }>) => void): Promise<DiskCopyResult[]>;
  release(sessionId: string): Promise<ReleaseResponse>;
  cancel(sessionId: string): Promise<CancelResponse>;
}

/** What the backup workflow needs from the nbd-exporter. */
export interface NbdExporterPort {
  createExport(req: CreateNbdExportRequest): Promise<NbdExportInfo>;
  removeExport(name: string): Promise<{ removed: boolean }>;
}
