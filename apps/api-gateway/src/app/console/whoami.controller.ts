import { Controller, Get, Req, UnauthorizedException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { API_ROLES } from '@sendense/db';
import { API_PREFIX } from '../common/api-paths';
import { READ_ROLES, Roles } from '../auth/roles.decorator';
import type { AuthedRequest } from '../auth/api-key.guard';

class WhoAmIDto {
  @ApiProperty({ description: 'Id of the API key' }) id!: string;
  @ApiProperty({ description: 'Name given to the key when it was created' }) name!: string;
  @ApiProperty({ enum: API_ROLES }) role!: string;
}

/** Who the key is: the console decides which buttons to show from the role. */
@ApiTags('auth')
@Controller(`${API_PREFIX}/auth`)
export class WhoAmIController {
  @Get('whoami')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'The API key making the request: its id, name and role' })
  @ApiOkResponse({ type: WhoAmIDto })
  whoami(@Req() req: AuthedRequest): WhoAmIDto {
    const p = req.principal;
    if (!p) throw new UnauthorizedException('an API key is required');
    return { id: p.id, name: p.name, role: p.role };
  }
}
