import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsBoolean, IsOptional, IsString, Length, Matches, ValidateNested } from 'class-validator';
import { SafeName, StrictInt } from '../../common/validation';

const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export class PolicyRetentionDto {
  @ApiPropertyOptional({ minimum: 0, maximum: 10000, description: 'Keep the newest N restore points' })
  @IsOptional()
  @StrictInt({ max: 10000 })
  keep_last?: number;
  @ApiPropertyOptional({ minimum: 0, maximum: 10000, description: 'GFS: newest restore point of each of the last N days (UTC)' })
  @IsOptional()
  @StrictInt({ max: 10000 })
  daily?: number;
  @ApiPropertyOptional({ minimum: 0, maximum: 10000 }) @IsOptional() @StrictInt({ max: 10000 }) weekly?: number;
  @ApiPropertyOptional({ minimum: 0, maximum: 10000 }) @IsOptional() @StrictInt({ max: 10000 }) monthly?: number;
}

export class PolicyVmsDto {
  @ApiPropertyOptional({ type: [String], description: 'Explicit VM names or context ids' })
  @IsOptional()
  @ArrayMaxSize(1000)
  @SafeName(255, { each: true })
  names?: string[];
  @ApiPropertyOptional({ description: 'Glob over VM names (`*` any characters, `?` one), resolved at every run', example: 'web-*' })
  @IsOptional()
  @SafeName(255)
  name_pattern?: string;
  @ApiPropertyOptional({
    description:
      "vCenter inventory folder below the datacenter's VM folder, VMs in sub-folders too, resolved on every registered vCenter at every run (VMs not imported yet are imported). " +
      'Names match exactly; with several datacenters the first name is the datacenter (dc1/prod/web); a / in a folder name is written %2f as vCenter stores it',
    example: 'prod/web',
    maxLength: 512,
  })
  @IsOptional()
  @SafeName(512)
  folder?: string;
}

export class CreatePolicyDto {
  @ApiProperty({ description: 'Unique name' }) @SafeName(100) name!: string;
  @ApiProperty({ description: 'Cron expression (5 fields, or 6 with seconds first)', example: '0 22 * * *' })
  @IsString()
  @Length(9, 128)
  @Matches(/^[0-9*/,\-A-Za-z? ]+$/, { message: 'cron must be a cron expression (digits, * / , - ? and names)' })
  cron!: string;
  @ApiPropertyOptional({ description: 'IANA time zone of the schedule and the window (default UTC)', example: 'Europe/Berlin' })
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/, { message: 'timezone must be an IANA zone name such as Europe/Berlin' })
  timezone?: string;
  @ApiProperty({ description: 'Repository id or name' }) @SafeName(255) repository!: string;
  @ApiProperty({ type: PolicyVmsDto, description: 'Which VMs: names, a name pattern and/or a folder (at least one)' })
  @ValidateNested()
  @Type(() => PolicyVmsDto)
  vms!: PolicyVmsDto;
  @ApiPropertyOptional({ nullable: true, minimum: 1, maximum: 3650, description: 'A full when the last full is this many days old' })
  @IsOptional()
  @StrictInt({ min: 1, max: 3650 })
  full_every_days?: number;
  @ApiPropertyOptional({ nullable: true, minimum: 1, maximum: 10000, description: 'A full after this many incrementals' })
  @IsOptional()
  @StrictInt({ min: 1, max: 10000 })
  full_after_incrementals?: number;
  @ApiPropertyOptional({ description: 'A due full is made by an incremental and a consolidation of the chain (synthetic full); default false' })
  @IsOptional()
  @IsBoolean()
  synthetic_full?: boolean;
  @ApiPropertyOptional({ type: PolicyRetentionDto, description: 'Retention applied to each VM after each run (none: keep everything)' })
  @IsOptional()
  @ValidateNested()
  @Type(() => PolicyRetentionDto)
  retention?: PolicyRetentionDto;
  @ApiPropertyOptional({ description: 'No VM backup starts after this HH:MM (policy time zone); running ones are not stopped', example: '06:00' })
  @IsOptional()
  @Matches(HH_MM, { message: 'window_end must be HH:MM (24 h)' })
  window_end?: string;
  @ApiPropertyOptional({ minimum: 1, maximum: 64, description: 'VM backups of one run at a time (default 2)' })
  @IsOptional()
  @StrictInt({ min: 1, max: 64 })
  concurrency?: number;
  @ApiPropertyOptional({ minimum: 1, maximum: 87600, description: "Webhook vm.stale when a VM's last successful backup is older than this many hours" })
  @IsOptional()
  @StrictInt({ min: 1, max: 87600 })
  max_age_hours?: number;
  @ApiPropertyOptional({ description: 'Create it paused (default false)' }) @IsOptional() @IsBoolean() paused?: boolean;
}

export class PolicyRunsQueryDto {
  @ApiPropertyOptional({ default: 20, minimum: 1, maximum: 500 }) @IsOptional() @StrictInt({ min: 1, max: 500 }) limit?: number;
  @ApiPropertyOptional({ default: 0, minimum: 0 }) @IsOptional() @StrictInt() offset?: number;
}

export class PolicyRunVmDto {
  @ApiProperty() vm_context_id!: string;
  @ApiProperty() vm_name!: string;
  @ApiProperty({ nullable: true, type: String, description: 'The VM backup run (GET /jobs/{run_id})' }) run_id!: string | null;
  @ApiProperty({ enum: ['full', 'incremental', 'differential'] }) type!: string;
  @ApiProperty({ description: 'Why this type, and what followed (consolidation, retention)' }) reason!: string;
  @ApiProperty({ enum: ['pending', 'running', 'completed', 'failed', 'skipped'] }) status!: string;
  @ApiProperty() bytes_transferred!: number;
  @ApiProperty({ nullable: true, type: Number }) duration_ms!: number | null;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
}

export class PolicyRunDto {
  @ApiProperty() id!: string;
  @ApiProperty() policy_id!: string;
  @ApiProperty({ enum: ['schedule', 'manual'] }) trigger!: string;
  @ApiProperty({ nullable: true, type: String, description: 'The schedule slot this run stands for (ISO time)' }) scheduled_for!: string | null;
  @ApiProperty({ enum: ['running', 'completed', 'partial', 'failed', 'skipped'] }) status!: string;
  @ApiProperty({ type: [PolicyRunVmDto] }) vms!: PolicyRunVmDto[];
  @ApiProperty() bytes_transferred!: number;
  @ApiProperty({ nullable: true, type: String }) message!: string | null;
  @ApiProperty() started_at!: string;
  @ApiProperty({ nullable: true, type: String }) finished_at!: string | null;
  @ApiProperty({ nullable: true, type: Number }) duration_ms!: number | null;
}

export class PolicyRunPageDto {
  @ApiProperty() total!: number;
  @ApiProperty({ type: [PolicyRunDto] }) items!: PolicyRunDto[];
}

export class PolicyDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty() cron!: string;
  @ApiProperty() timezone!: string;
  @ApiProperty() repository_id!: string;
  @ApiProperty() repository!: string;
  @ApiProperty({ type: PolicyVmsDto }) vms!: PolicyVmsDto;
  @ApiProperty({ nullable: true, type: Number }) full_every_days!: number | null;
  @ApiProperty({ nullable: true, type: Number }) full_after_incrementals!: number | null;
  @ApiProperty() synthetic_full!: boolean;
  @ApiProperty({ nullable: true, type: PolicyRetentionDto }) retention!: PolicyRetentionDto | null;
  @ApiProperty({ nullable: true, type: String }) window_end!: string | null;
  @ApiProperty() concurrency!: number;
  @ApiProperty({ nullable: true, type: Number }) max_age_hours!: number | null;
  @ApiProperty() paused!: boolean;
  @ApiProperty({ description: 'A BullMQ job scheduler exists for it (false while paused)' }) scheduled!: boolean;
  @ApiProperty({ nullable: true, type: String, description: 'Next slot (ISO time), null while paused' }) next_run_at!: string | null;
  @ApiProperty({ nullable: true, type: PolicyRunDto }) last_run!: PolicyRunDto | null;
  @ApiProperty() created_at!: string;
}

export class PolicyRunStartedDto {
  @ApiProperty({ description: 'The queue job of the run' }) job_id!: string;
  @ApiProperty() policy_id!: string;
  @ApiProperty({ enum: ['queued'] }) status!: 'queued';
}
