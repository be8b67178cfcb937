import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { ApiKeyInfo, CreatedApiKey } from '@sendense/db';
import { API_PREFIX } from '../common/api-paths';
import { ApiAuthErrors, ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, Roles } from '../auth/roles.decorator';
import { ApiKeyDto, CreateApiKeyDto, CreatedApiKeyDto } from './dto/api-key.dto';
import { KeysService } from './keys.service';

@ApiTags('api keys')
@Controller(`${API_PREFIX}/apikeys`)
export class KeysController {
  constructor(private readonly keys: KeysService) {}

  @Get()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'List API keys (never the keys themselves)' })
  @ApiOkResponse({ type: [ApiKeyDto] })
  list(): Promise<ApiKeyInfo[]> {
    return this.keys.list();
  }

  @Post()
  @Roles(...ADMIN_ROLES)
  @ApiAuthErrors({ body: true })
  @ApiOperation({ summary: 'Create an API key; the answer holds the key once' })
  @ApiCreatedResponse({ type: CreatedApiKeyDto })
  create(@Body() body: CreateApiKeyDto): Promise<CreatedApiKey> {
    return this.keys.create(body.name, body.role);
  }

  @Delete(':id')
  @HttpCode(204)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Revoke an API key' })
  @ApiNoContentResponse({ description: 'Revoked' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such key, or already revoked' })
  revoke(@Param('id') id: string): Promise<void> {
    return this.keys.revoke(id);
  }
}
