import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsArray, IsBoolean, IsIn, IsOptional, IsString, IsUrl, Length, Matches, ValidateIf, ValidateNested } from 'class-validator';
import { SafeName } from '../../common/validation';

export class DiskReaderDto {
  @ApiProperty({ enum: ['vddk', 'standin-nbd'] })
  @IsIn(['vddk', 'standin-nbd'])
  kind!: 'vddk' | 'standin-nbd';

  @ApiPropertyOptional({ description: 'standin-nbd: base URL of the VMware stand-in harness API' })
  @ValidateIf((o: DiskReaderDto) => o.kind === 'standin-nbd')
  @IsUrl({ require_tld: false, protocols: ['http', 'https'] })
  harnessUrl?: string;

  @ApiPropertyOptional({ description: 'vddk: VDDK library directory (absolute path)' })
  @IsOptional()
  @Matches(/^\/[A-Za-z0-9._/-]{1,255}$/, { message: 'libdir must be an absolute path of letters, digits, ".", "_", "-" and "/"' })
  libdir?: string;
}

export class RegisterVCenterDto {
  @ApiProperty({ example: 'vc01' }) @SafeName() name!: string;
  @ApiProperty({ example: 'https://vcenter.example.com/sdk' }) @IsUrl({ require_tld: false, protocols: ['https', 'http'] }) url!: string;
  @ApiProperty({ example: 'backup@vsphere.local' }) @SafeName() username!: string;
  @ApiProperty({ description: 'Stored encrypted with SENDENSE_SECRET_KEY' }) @IsString() @Length(1, 1024) password!: string;
  @ApiPropertyOptional({ description: 'Accept any certificate (lab use)' }) @IsOptional() @IsBoolean() insecure?: boolean;
  @ApiPropertyOptional({ description: 'Accept exactly this certificate (SHA-1 or SHA-256 hex)' }) @IsOptional() @IsString() thumbprint?: string;
  @ApiPropertyOptional({ type: DiskReaderDto }) @IsOptional() @ValidateNested() @Type(() => DiskReaderDto) disk_reader?: DiskReaderDto;
}

export class ImportVmsDto {
  @ApiPropertyOptional({ type: [String], description: 'Only these VM names (default: all)' })
  @IsOptional()
  @IsArray()
  @SafeName(255, { each: true })
  vm_names?: string[];
}

export class VCenterDto {
  @ApiProperty() id!: string;
  @ApiProperty({ example: 'vc01' }) name!: string;
  @ApiProperty({ example: 'https://vcenter.example.com/sdk' }) url!: string;
  @ApiProperty() username!: string;
  @ApiProperty() insecure!: boolean;
  @ApiProperty({ nullable: true, type: String }) thumbprint!: string | null;
  @ApiProperty({ nullable: true, type: DiskReaderDto, description: 'How the Capture Agent reads disk data' }) disk_reader!: unknown;
  @ApiProperty() created_at!: Date;
}

export class ImportedVmDto {
  @ApiProperty({ example: 'ctx-pgtest2-1a2b3c4d' }) context_id!: string;
  @ApiProperty({ example: 'pgtest2' }) vm_name!: string;
  @ApiProperty({ example: 'vm-42' }) moref!: string;
  @ApiProperty({ description: 'Number of virtual disks' }) disks!: number;
  @ApiProperty() cbt_enabled!: boolean;
}
