import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBadRequestResponse, ApiConflictResponse, ApiCreatedResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsArray, IsBoolean, IsIn, IsOptional, IsString, IsUrl, Length, Matches, ValidateIf, ValidateNested } from 'class-validator';
import type { DiskReaderSpec } from '@sendense/contracts';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, READ_ROLES, Roles } from '../auth/roles.decorator';
import { SafeName } from '../common/validation';
import { VCentersService } from './vcenters.service';

class DiskReaderDto {
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

class RegisterVCenterDto {
  @ApiProperty({ example: 'vc01' }) @SafeName() name!: string;
  @ApiProperty({ example: 'https://vcenter.example.com/sdk' }) @IsUrl({ require_tld: false, protocols: ['https', 'http'] }) url!: string;
  @ApiProperty({ example: 'backup@vsphere.local' }) @SafeName() username!: string;
  @ApiProperty({ description: 'Stored encrypted with SENDENSE_SECRET_KEY' }) @IsString() @Length(1, 1024) password!: string;
  @ApiPropertyOptional({ description: 'Accept any certificate (lab use)' }) @IsOptional() @IsBoolean() insecure?: boolean;
  @ApiPropertyOptional({ description: 'Accept exactly this certificate (SHA-1 or SHA-256 hex)' }) @IsOptional() @IsString() thumbprint?: string;
  @ApiPropertyOptional({ type: DiskReaderDto }) @IsOptional() @ValidateNested() @Type(() => DiskReaderDto) disk_reader?: DiskReaderDto;
}

class ImportVmsDto {
  @ApiPropertyOptional({ type: [String], description: 'Only these VM names (default: all)' })
  @IsOptional()
  @IsArray()
  @SafeName(255, { each: true })
  vm_names?: string[];
}

@ApiTags('vcenters')
@Controller(`${API_PREFIX}/vcenters`)
export class VCentersController {
  constructor(private readonly vcenters: VCentersService) {}

  @Post()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Register a vCenter (the credentials are checked by logging in)' })
  @ApiCreatedResponse({ description: 'Registered' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body, or the login failed (the message says why)' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The name is taken' })
  register(@Body() b: RegisterVCenterDto) {
    return this.vcenters.register({
      name: b.name,
      url: b.url,
      username: b.username,
      password: b.password,
      insecure: b.insecure,
      thumbprint: b.thumbprint,
      diskReader: b.disk_reader as DiskReaderSpec | undefined,
    });
  }

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'List registered vCenters (never their passwords)' })
  @ApiOkResponse({ description: 'vCenters' })
  list() {
    return this.vcenters.list();
  }

  @Post(':id/import')
  @HttpCode(200)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'List the vCenter\'s VMs and register them for backup (idempotent)' })
  @ApiOkResponse({ description: 'The imported VMs with their context ids' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such vCenter, or a named VM does not exist' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'vCenter login failed' })
  import(@Param('id') id: string, @Body() b: ImportVmsDto) {
    return this.vcenters.importVms(id, b.vm_names);
  }
}
