import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString } from 'class-validator';
import type { BackupType } from '@sendense/contracts';
import { VmSelectorDto } from '../../vms/dto/vm.dto';
import { StrictInt } from '../../common/validation';

export const BACKUP_TYPES = ['full', 'incremental', 'differential'] as const;
export const BACKUP_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;

export class StartBackupDto extends VmSelectorDto {
  @ApiProperty({ enum: BACKUP_TYPES }) @IsIn(BACKUP_TYPES) backup_type!: BackupType;
  @ApiPropertyOptional({ description: 'Repository id or name (optional when only one exists)', example: 'local' })
  @IsOptional()
  @IsString()
  repository?: string;
}

export class ListBackupsQuery extends VmSelectorDto {
  @ApiPropertyOptional({ enum: BACKUP_STATUSES })
  @IsOptional()
  @IsIn(BACKUP_STATUSES)
  status?: string;
  @ApiPropertyOptional({ default: 100 }) @IsOptional() @StrictInt({ min: 1, max: 1000 }) limit?: number;
  @ApiPropertyOptional({ default: 0 }) @IsOptional() @StrictInt() offset?: number;
}

export class StartedBackupDto {
  @ApiProperty({ format: 'uuid', description: 'Follow it with GET /api/v1/jobs/{run_id}' }) run_id!: string;
  @ApiProperty() vm_context_id!: string;
  @ApiProperty() vm_name!: string;
  @ApiProperty({ enum: BACKUP_TYPES }) backup_type!: string;
  @ApiProperty({ description: 'Repository name' }) repository!: string;
  @ApiProperty({ enum: ['queued'] }) status!: string;
}

/** One restore point of one disk (a row of backup_jobs). */
export class BackupDto {
  @ApiProperty() id!: string;
  @ApiProperty({ description: 'The VM backup this disk was part of' }) run_id!: string;
  @ApiProperty() vm_context_id!: string;
  @ApiProperty() vm_name!: string;
  @ApiProperty() disk_id!: number;
  @ApiProperty({ enum: BACKUP_TYPES, description: 'What was made' }) backup_type!: string;
  @ApiProperty({ enum: BACKUP_TYPES, description: 'What was asked for' }) requested_type!: string;
  @ApiProperty({ nullable: true, type: String, description: 'Why a full was made instead of the requested type' }) fallback_reason!: string | null;
  @ApiProperty({ enum: BACKUP_STATUSES }) status!: string;
  @ApiProperty({ nullable: true, type: String }) repository_id!: string | null;
  @ApiProperty({ description: 'Path of the image inside its repository' }) repository_path!: string;
  @ApiProperty({ nullable: true, type: String }) parent_backup_id!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'CBT change id the backup was taken at' }) change_id!: string | null;
  @ApiProperty() bytes_transferred!: number;
  @ApiProperty() total_bytes!: number;
  @ApiProperty({ nullable: true, type: Number }) virtual_size_bytes!: number | null;
  @ApiProperty({ nullable: true, type: Number }) allocated_bytes!: number | null;
  @ApiProperty({ nullable: true, type: String, description: 'Content checksum taken at backup time' }) checksum!: string | null;
  @ApiProperty({ nullable: true, type: 'object', additionalProperties: true, description: 'Last progress the worker recorded' }) progress!: unknown;
  @ApiProperty({ nullable: true, type: String }) error_message!: string | null;
  @ApiProperty({ nullable: true, type: Date }) verified_at!: Date | null;
  @ApiProperty({ nullable: true, type: String, enum: ['ok', 'failed'] }) verify_status!: string | null;
  @ApiProperty({
    nullable: true,
    type: String,
    description: 'Why this restore point may not hold what the guest held (a CBT audit mismatch); the next backup is a full',
  })
  suspect_reason!: string | null;
  @ApiProperty({ nullable: true, type: 'object', additionalProperties: true, description: 'The CBT audit of this incremental: blocks compared, mismatches' })
  cbt_audit!: unknown;
  @ApiProperty() created_at!: Date;
  @ApiProperty({ nullable: true, type: Date }) started_at!: Date | null;
  @ApiProperty({ nullable: true, type: Date }) completed_at!: Date | null;
}

export class BackupListDto {
  @ApiProperty({ description: 'Rows matching the filter (all pages)' }) total!: number;
  @ApiProperty({ type: [BackupDto] }) items!: BackupDto[];
}

export class BackupDetailDto extends BackupDto {
  @ApiProperty({ type: [String], description: 'Oldest first: the full, then each restore point up to this one' }) chain!: string[];
  @ApiProperty({ type: [String], description: 'Completed restore points whose parent this is' }) dependents!: string[];
}

/** What verifying a restore point found (the storage layer's answer, passed through). */
export class VerificationDto {
  @ApiProperty() restorePointId!: string;
  @ApiProperty() at!: string;
  @ApiProperty({ description: 'checkClean and checksumMatches' }) ok!: boolean;
  @ApiProperty({ description: 'qemu-img check found no errors' }) checkClean!: boolean;
  @ApiProperty() checksumMatches!: boolean;
  @ApiProperty({ nullable: true, type: String }) expectedChecksum!: string | null;
  @ApiProperty({ nullable: true, type: String }) actualChecksum!: string | null;
  @ApiProperty({ type: [String] }) problems!: string[];
}
