import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches } from 'class-validator';
import { SafeName, StrictInt } from '../../common/validation';

export const REPOSITORY_TYPES = ['local', 's3', 'azure', 'nfs'] as const;
export type RepositoryTypeName = (typeof REPOSITORY_TYPES)[number];

export class CreateRepositoryDto {
  @ApiProperty({ example: 'local' }) @SafeName() name!: string;
  @ApiProperty({ enum: REPOSITORY_TYPES }) @IsIn(REPOSITORY_TYPES) type!: RepositoryTypeName;
  @ApiPropertyOptional({ example: '/var/lib/sendense/backups', description: 'local: directory of the repository' })
  @IsOptional()
  @IsString()
  path?: string;
  @ApiPropertyOptional({ description: "Storage node that serves it (default: the gateway's NODE_NAME)" })
  @IsOptional()
  @Matches(/^[A-Za-z0-9._-]{1,63}$/)
  storage_node?: string;
  @ApiPropertyOptional({
    description: "CBT audit: blocks CBT reported unchanged that are compared after each incremental disk (0: off; default: the worker's CBT_AUDIT_SAMPLES)",
  })
  @IsOptional()
  @StrictInt({ max: 4096 })
  cbt_audit_samples?: number;
}

export class RepositoryDto {
  @ApiProperty() id!: string;
  @ApiProperty({ example: 'local' }) name!: string;
  @ApiProperty({ enum: REPOSITORY_TYPES }) type!: string;
  @ApiProperty({ description: 'Backend settings, e.g. {"path": "/var/lib/sendense/backups"} for local', type: 'object', additionalProperties: true })
  config!: unknown;
  @ApiProperty() enabled!: boolean;
  @ApiProperty({ description: 'The storage node whose worker writes it' }) storage_node!: string;
  @ApiProperty() total_size_bytes!: number;
  @ApiProperty() available_size_bytes!: number;
  @ApiProperty() updated_at!: Date;
}

export class RepositorySpaceDto extends RepositoryDto {
  @ApiProperty({ description: 'Sum of the allocated size of its completed restore points' }) used_by_backups_bytes!: number;
  @ApiProperty({ enum: ['now', 'by its storage node'], description: 'Whether total/available were measured by this gateway now' }) measured!: string;
}
