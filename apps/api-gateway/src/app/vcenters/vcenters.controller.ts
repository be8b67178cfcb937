import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBadRequestResponse, ApiConflictResponse, ApiCreatedResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { DiskReaderSpec } from '@sendense/contracts';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, READ_ROLES, Roles } from '../auth/roles.decorator';
import { ImportedVmDto, ImportVmsDto, RegisterVCenterDto, VCenterDto } from './dto/vcenter.dto';
import { VCentersService } from './vcenters.service';

@ApiTags('vcenters')
@Controller(`${API_PREFIX}/vcenters`)
export class VCentersController {
  constructor(private readonly vcenters: VCentersService) {}

  @Post()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Register a vCenter (the credentials are checked by logging in)' })
  @ApiCreatedResponse({ type: VCenterDto, description: 'Registered' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body, or the login failed (the message says why)' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The name is taken' })
  register(@Body() b: RegisterVCenterDto): Promise<VCenterDto> {
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
  @ApiOkResponse({ type: [VCenterDto], description: 'vCenters' })
  list(): Promise<VCenterDto[]> {
    return this.vcenters.list();
  }

  @Post(':id/import')
  @HttpCode(200)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: "List the vCenter's VMs and register them for backup (idempotent)" })
  @ApiOkResponse({ type: [ImportedVmDto], description: 'The imported VMs with their context ids' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such vCenter, or a named VM does not exist' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'vCenter login failed' })
  import(@Param('id') id: string, @Body() b: ImportVmsDto): Promise<ImportedVmDto[]> {
    return this.vcenters.importVms(id, b.vm_names);
  }
}
