import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { BackupDto } from '../../backups/dto/backup.dto';
import { SafeName, StrictInt } from '../../common/validation';

/** States of a backup run as the API reports them. */
export const RUN_STATES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type RunState = (typeof RUN_STATES)[number];

class DiskProgressDto {
  @ApiProperty() diskId!: number;
  @ApiProperty() bytesDone!: number;
  @ApiProperty() bytesTotal!: number;
  @ApiProperty() phase!: string;
}

/** libs/contracts JobProgress, as the worker reports it. */
export class JobProgressDto {
  @ApiProperty({ enum: ['queued', 'preparing', 'snapshot', 'copying', 'committing', 'cleanup', 'done'] }) phase!: string;
  @ApiProperty() bytesDone!: number;
  @ApiProperty() bytesTotal!: number;
  @ApiProperty() bytesSkippedZero!: number;
  @ApiProperty() rateBytesPerSec!: number;
  @ApiProperty({ type: [DiskProgressDto] }) disks!: DiskProgressDto[];
  @ApiPropertyOptional() message?: string;
}

export class JobEventDto {
  @ApiProperty() at!: Date;
  @ApiProperty({ enum: ['debug', 'info', 'warn', 'error'] }) level!: string;
  @ApiProperty({ example: 'copy' }) phase!: string;
  @ApiProperty() message!: string;
}

export class JobStatusDto {
  @ApiProperty({ format: 'uuid' }) run_id!: string;
  @ApiProperty() vm_context_id!: string;
  @ApiProperty({ enum: [...RUN_STATES, 'unknown'] }) status!: string;
  @ApiProperty({
    nullable: true,
    type: Number,
    description: 'Attempts that have ended, by an error, by the worker running it dying (a stall) or by completing; the running attempt is not counted yet',
  })
  attempts_made!: number | null;
  @ApiProperty({ nullable: true, type: String, description: 'When the queue took the job (ISO 8601)' }) queued_at!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'When a worker started it' }) started_at!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'When it ended (last attempt)' }) finished_at!: string | null;
  @ApiProperty({ nullable: true, type: JobProgressDto }) progress!: unknown;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
  @ApiProperty({ type: [BackupDto], description: 'The restore points of this run, one per disk' }) backups!: BackupDto[];
  @ApiProperty({ type: [JobEventDto], description: 'The first 200 events of the run' }) events!: JobEventDto[];
}

export class CancelledJobDto {
  @ApiProperty({ format: 'uuid' }) run_id!: string;
  @ApiProperty({ enum: ['cancelled', 'cancelling'], description: 'cancelled: it was still queued; cancelling: the worker is stopping it' }) status!: string;
}

export class ListJobsQuery {
  @ApiPropertyOptional({ enum: RUN_STATES }) @IsOptional() @IsIn(RUN_STATES) state?: RunState;
  @ApiPropertyOptional({ description: 'VM name or context id', example: 'pgtest2' }) @IsOptional() @SafeName() vm?: string;
  @ApiPropertyOptional({ default: 50, minimum: 1, maximum: 500 }) @IsOptional() @StrictInt({ min: 1, max: 500 }) limit?: number;
  @ApiPropertyOptional({ default: 0, minimum: 0, description: 'Runs to skip (newest first)' }) @IsOptional() @StrictInt() offset?: number;
}

/** One backup run of a VM (every disk), newest first in GET /api/v1/jobs. */
export class JobSummaryDto {
  @ApiProperty({ format: 'uuid' }) run_id!: string;
  @ApiProperty({ enum: ['backup'], description: 'Only backup runs are listed (maintenance jobs answer their request directly)' }) kind!: string;
  @ApiProperty() vm_context_id!: string;
  @ApiProperty({ nullable: true, type: String, description: 'null while queued when the VM has since been removed' }) vm_name!: string | null;
  @ApiProperty({ enum: RUN_STATES }) status!: string;
  @ApiProperty({ enum: ['full', 'incremental', 'differential'] }) requested_type!: string;
  @ApiProperty({ nullable: true, type: String }) repository_id!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'Who asked for it (queued runs only; the restore points do not record it)' }) requested_by!:
    | string
    | null;
  @ApiProperty({ description: 'When it was queued (queued runs) or its first restore point was created (ISO 8601)' }) queued_at!: string;
  @ApiProperty({ nullable: true, type: String }) started_at!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'When its last disk ended; null while running' }) finished_at!: string | null;
  @ApiProperty({ description: 'Disks in the run (0 while queued)' }) disks!: number;
  @ApiProperty() bytes_transferred!: number;
  @ApiProperty() total_bytes!: number;
  @ApiProperty({ nullable: true, type: String, description: 'An error message of a failed disk' }) error!: string | null;
}

export class JobListDto {
  @ApiProperty({ description: 'Runs matching the filter (all pages)' }) total!: number;
  @ApiProperty() offset!: number;
  @ApiProperty() limit!: number;
  @ApiProperty({ type: [JobSummaryDto] }) items!: JobSummaryDto[];
}
