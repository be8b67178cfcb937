import type { BackupJob } from '@sendense/db';
import type { BackupDto } from './dto/backup.dto';

/** A restore point as the API shows it (snake_case, sizes as numbers). */
export function toBackupDto(b: BackupJob): BackupDto {
  return {
    id: b.id,
    run_id: b.runId,
    vm_context_id: b.vmContextId,
    vm_name: b.vmName,
    disk_id: b.diskId,
    backup_type: b.backupType,
    requested_type: b.requestedType,
    fallback_reason: b.fallbackReason,
    status: b.status,
    repository_id: b.repositoryId,
    repository_path: b.repositoryPath,
    parent_backup_id: b.parentBackupId,
    change_id: b.changeId,
    bytes_transferred: Number(b.bytesTransferred),
    total_bytes: Number(b.totalBytes),
    virtual_size_bytes: b.virtualSizeBytes === null ? null : Number(b.virtualSizeBytes),
    allocated_bytes: b.allocatedBytes === null ? null : Number(b.allocatedBytes),
    checksum: b.checksum,
    progress: b.progress,
    error_message: b.errorMessage,
    verified_at: b.verifiedAt,
    verify_status: b.verifyStatus,
    suspect_reason: b.suspectReason,
    cbt_audit: b.cbtAudit,
    created_at: b.createdAt,
    started_at: b.startedAt,
    completed_at: b.completedAt,
  };
}
