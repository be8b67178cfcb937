import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsOptional, IsString } from 'class-validator';
import type { RetentionPolicy } from '@sendense/contracts';
import { StrictInt } from '../../common/validation';

/**
 * The API spells the counts of a retention policy (libs/contracts
 * RetentionPolicy) in snake case; this is the one mapping between the two.
 */
export const RETENTION_API_FIELDS = { keepLast: 'keep_last', daily: 'daily', weekly: 'weekly', monthly: 'monthly' } as const satisfies Record<
  keyof Required<RetentionPolicy>,
  string
>;
type RetentionApiCounts = { [K in keyof typeof RETENTION_API_FIELDS as (typeof RETENTION_API_FIELDS)[K]]: number };

export function policyOfApi(b: Partial<RetentionApiCounts>): Required<RetentionPolicy> {
  return { keepLast: b.keep_last ?? 0, daily: b.daily ?? 0, weekly: b.weekly ?? 0, monthly: b.monthly ?? 0 };
}

export function apiOfPolicy(p: Required<RetentionPolicy>): RetentionApiCounts {
  return { keep_last: p.keepLast, daily: p.daily, weekly: p.weekly, monthly: p.monthly };
}

const COUNT = { default: 0, minimum: 0, maximum: 10000 };

export class RetentionPolicyDto implements Partial<RetentionApiCounts> {
  @ApiProperty({ description: 'Repository id or name' }) @IsString() repository!: string;
  @ApiPropertyOptional({ description: 'Only this VM (default: the whole repository)' }) @IsOptional() @IsString() vm_context_id?: string;
  @ApiPropertyOptional({ ...COUNT, description: 'Keep the newest N restore points' }) @IsOptional() @StrictInt({ max: 10000 }) keep_last?: number;
  @ApiPropertyOptional({ ...COUNT, description: 'GFS: newest restore point of each of the last N days (UTC) that have one' })
  @IsOptional()
  @StrictInt({ max: 10000 })
  daily?: number;
  @ApiPropertyOptional({ ...COUNT, description: '... of each of the last N ISO weeks' }) @IsOptional() @StrictInt({ max: 10000 }) weekly?: number;
  @ApiPropertyOptional({ ...COUNT, description: '... of each of the last N months' }) @IsOptional() @StrictInt({ max: 10000 }) monthly?: number;
}

export class ApplyRetentionDto {
  @ApiProperty({ description: 'Repository id or name' }) @IsString() repository!: string;
  @ApiPropertyOptional() @IsOptional() @IsString() vm_context_id?: string;
  @ApiPropertyOptional({ default: true, description: 'Only list what would go' }) @IsOptional() @IsBoolean() dry_run?: boolean;
}

export class RetentionPolicyResponseDto implements RetentionApiCounts {
  @ApiProperty() id!: string;
  @ApiProperty() repository_id!: string;
  @ApiProperty({ nullable: true, type: String, description: 'null: the policy of the whole repository' }) vm_context_id!: string | null;
  @ApiProperty() keep_last!: number;
  @ApiProperty() daily!: number;
  @ApiProperty() weekly!: number;
  @ApiProperty() monthly!: number;
}

class KeptRestorePointDto {
  @ApiProperty() id!: string;
  @ApiProperty({ type: [String], example: ['last 1', 'daily 2026-12-01'] }) reasons!: string[];
}

class RetentionMergeDto {
  @ApiProperty() fromId!: string;
  @ApiProperty() toId!: string;
  @ApiProperty({ type: [String] }) removedIds!: string[];
}

class RetentionErrorDto {
  @ApiProperty() id!: string;
  @ApiProperty() code!: string;
  @ApiProperty() message!: string;
}

/** The storage layer's plan (and, unless dryRun, what was done); its field names, passed through. */
export class RetentionResultDto {
  @ApiProperty({ type: [KeptRestorePointDto] }) keep!: KeptRestorePointDto[];
  @ApiProperty({ type: [String], description: 'Deleted outright, leaves first' }) delete!: string[];
  @ApiProperty({ type: [RetentionMergeDto], description: 'Merged into toId so that it keeps its exact content' }) merge!: RetentionMergeDto[];
  @ApiProperty() dryRun!: boolean;
  @ApiProperty({ type: [RetentionErrorDto] }) errors!: RetentionErrorDto[];
}
