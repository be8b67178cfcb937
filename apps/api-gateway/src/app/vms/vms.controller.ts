import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { API_PREFIX } from '../common/api-paths';
import { READ_ROLES, Roles } from '../auth/roles.decorator';
import { VmDto } from './dto/vm.dto';
import { VmsService } from './vms.service';

@ApiTags('vms')
@Controller(`${API_PREFIX}/vms`)
export class VmsController {
  constructor(private readonly vms: VmsService) {}

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'VMs registered for backup, with their disks' })
  @ApiOkResponse({ type: [VmDto], description: 'VMs' })
  list(): Promise<VmDto[]> {
    return this.vms.list();
  }
}
