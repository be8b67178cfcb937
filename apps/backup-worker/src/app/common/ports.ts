import type { CaptureAgentClient, CreateNbdExportRequest, NbdExportInfo } from '@sendense/contracts';

/** What the backup workflow needs from the Capture Agent (CaptureAgentClient, or a fake in tests). */
export type CaptureAgentPort = Pick<CaptureAgentClient, 'prepare' | 'copy' | 'release' | 'cancel' | 'holdLease'>;

/** What the backup workflow needs from the nbd-exporter. */
export interface NbdExporterPort {
  createExport(req: CreateNbdExportRequest): Promise<NbdExportInfo>;
  removeExport(name: string): Promise<{ removed: boolean }>;
}
