import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsOptional, IsString, Length } from 'class-validator';
import { StrictInt } from '../../common/validation';

export class CreateExportDto {
  @ApiProperty({ description: 'The backup (restore point) to serve; any point of a chain (the whole chain is served)' })
  @IsString()
  @Length(1, 64)
  backup_id!: string;

  @ApiPropertyOptional({
    default: false,
    description:
      'Writable: clients write a fresh temporary QCOW2 overlay on top of the restore point (the chain is never written); discarded when the export ends',
  })
  @IsOptional()
  @IsBoolean()
  writable?: boolean;

  @ApiPropertyOptional({ default: 3600, minimum: 60, maximum: 604800, description: 'The export ends after this many seconds with no client connected' })
  @IsOptional()
  @StrictInt({ min: 60, max: 604_800 })
  idle_timeout_seconds?: number;
}

export class TlsPskDto {
  @ApiProperty({ example: 'sendense', description: 'PSK identity (the user part of the nbds:// URI)' }) identity!: string;
  @ApiProperty({ description: 'The key, hex: give clients a file with "identity:key" (nbdcopy ...?tls-psk-file=FILE); shown only here' }) key!: string;
}

export class ExportDto {
  @ApiProperty({ example: 'backup-ctx-1-disk0-restore-20261202T060000123', description: 'Export name: DELETE /api/v1/restore/export/{name} ends it' })
  name!: string;
  @ApiProperty() backup_id!: string;
  @ApiProperty({
    example: 'nbd://127.0.0.1:10811/backup-ctx-1-disk0-restore-20261202T060000123',
    description: 'Open with any NBD client (nbdcopy, qemu-img, nbdinfo)',
  })
  uri!: string;
  @ApiProperty() host!: string;
  @ApiProperty({ nullable: true, type: Number }) port!: number | null;
  @ApiProperty({ description: 'Disk size as clients see it, bytes' }) size_bytes!: number;
  @ApiProperty() writable!: boolean;
  @ApiProperty({ description: 'TLS is required (nbds://)' }) tls!: boolean;
  @ApiProperty({ nullable: true, enum: ['x509', 'psk'], type: String }) tls_mode!: 'x509' | 'psk' | null;
  @ApiPropertyOptional({ type: TlsPskDto, description: 'Only in the answer that created a TLS-PSK export' }) tls_psk?: TlsPskDto;
  @ApiProperty({ nullable: true, type: Number }) idle_timeout_seconds!: number | null;
  @ApiProperty() created_at!: string;
  @ApiProperty({ description: 'The last time a client was seen connected' }) last_active_at!: string;
  @ApiProperty({ nullable: true, type: String, description: 'When it ends if no client connects before' }) expires_at!: string | null;
  @ApiProperty() node_name!: string;
}

export const IMAGE_FORMATS = ['raw', 'qcow2', 'vmdk'] as const;
export type ImageFormatParam = (typeof IMAGE_FORMATS)[number];

export class ImageQuery {
  @ApiPropertyOptional({
    enum: IMAGE_FORMATS,
    default: 'raw',
    description: 'raw (Range requests give 206), qcow2 or streamOptimized vmdk (converted without a backing chain)',
  })
  @IsOptional()
  @IsIn(IMAGE_FORMATS)
  format?: ImageFormatParam;
}

export class RestoreDiskDto {
  @ApiProperty({ description: 'The backup (restore point) to write back' })
  @IsString()
  @Length(1, 64)
  backup_id!: string;

  @ApiPropertyOptional({
    enum: ['quick', 'full'],
    default: 'quick',
    description: 'quick: write only what changed since the restore point (falls back to full when the changeId is no longer valid); full: the whole disk',
  })
  @IsOptional()
  @IsIn(['quick', 'full'])
  mode?: 'quick' | 'full';

  @ApiPropertyOptional({ description: "VM context to write into (default: the restore point's VM)" })
  @IsOptional()
  @IsString()
  @Length(1, 191)
  target_vm_context_id?: string;

  @ApiPropertyOptional({ description: "Device key of the disk to write (default: the restore point's disk on that VM)" })
  @IsOptional()
  @StrictInt({ min: 0, max: 2_147_483_647 })
  target_device_key?: number;
}

export class StartedRestoreDto {
  @ApiProperty({ description: 'Follow it with GET /api/v1/jobs/{run_id} (progress, events); cancel with POST /api/v1/jobs/{run_id}/cancel' }) run_id!: string;
  @ApiProperty() backup_id!: string;
  @ApiProperty() target_vm_context_id!: string;
  @ApiProperty() target_vm_name!: string;
  @ApiProperty() target_device_key!: number;
  @ApiProperty({ enum: ['quick', 'full'] }) mode!: 'quick' | 'full';
  @ApiProperty({ example: 'queued' }) status!: string;
}
