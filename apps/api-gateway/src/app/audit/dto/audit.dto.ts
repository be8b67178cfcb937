import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsISO8601, IsOptional } from 'class-validator';
import { SafeName, StrictInt } from '../../common/validation';

export class AuditQueryDto {
  @ApiPropertyOptional({ description: 'API key id' }) @IsOptional() @SafeName(64) key_id?: string;
  @ApiPropertyOptional({ description: 'Action, or its prefix (e.g. "policies." or "backups.start")' }) @IsOptional() @SafeName(191) action?: string;
  @ApiPropertyOptional({ description: 'Target (policy id, VM name, run id, ...)' }) @IsOptional() @SafeName(255) target?: string;
  @ApiPropertyOptional({ enum: ['ok', 'error', 'denied'], description: 'denied: refused by authentication or the role check (401/403)' })
  @IsOptional()
  @IsIn(['ok', 'error', 'denied'])
  result?: 'ok' | 'error' | 'denied';
  @ApiPropertyOptional({ description: 'From this time (ISO 8601)' }) @IsOptional() @IsISO8601() since?: string;
  @ApiPropertyOptional({ description: 'Before this time (ISO 8601)' }) @IsOptional() @IsISO8601() until?: string;
  @ApiPropertyOptional({ default: 50, minimum: 1, maximum: 1000 }) @IsOptional() @StrictInt({ min: 1, max: 1000 }) limit?: number;
  @ApiPropertyOptional({ default: 0, minimum: 0 }) @IsOptional() @StrictInt() offset?: number;
}

export class AuditEntryDto {
  @ApiProperty() id!: string;
  @ApiProperty() at!: string;
  @ApiProperty({ nullable: true, type: String }) key_id!: string | null;
  @ApiProperty({ nullable: true, type: String }) key_name!: string | null;
  @ApiProperty({ nullable: true, type: String }) role!: string | null;
  @ApiProperty() method!: string;
  @ApiProperty() path!: string;
  @ApiProperty({ description: 'controller.handler, e.g. policies.pause' }) action!: string;
  @ApiProperty({ nullable: true, type: String }) target!: string | null;
  @ApiProperty({ enum: ['ok', 'error', 'denied'] }) result!: string;
  @ApiProperty() status!: number;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
  @ApiProperty({ nullable: true, type: String }) ip!: string | null;
}

export class AuditPageDto {
  @ApiProperty() total!: number;
  @ApiProperty({ type: [AuditEntryDto] }) items!: AuditEntryDto[];
}
