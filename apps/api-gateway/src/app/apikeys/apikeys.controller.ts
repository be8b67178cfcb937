import { Body, Controller, Delete, Get, HttpCode, NotFoundException, Param, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { IsIn } from 'class-validator';
import { API_ROLES, type ApiRole } from '@sendense/db';
import { API_PREFIX } from '../common/api-paths';
import { ApiAuthErrors, ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, Roles } from '../auth/roles.decorator';
import { SafeName } from '../common/validation';
import { ApiKeyService } from '../auth/api-key.service';

class CreateApiKeyDto {
  @ApiProperty({ example: 'backup operator laptop' })
  @SafeName()
  name!: string;

  @ApiProperty({ enum: API_ROLES })
  @IsIn(API_ROLES)
  role!: ApiRole;
}

class ApiKeyDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ enum: API_ROLES }) role!: string;
  @ApiProperty({ description: 'The visible part of the key (sdk_<prefix>_...)' }) prefix!: string;
  @ApiProperty() createdAt!: Date;
  @ApiProperty({ nullable: true, type: Date }) lastUsedAt!: Date | null;
  @ApiProperty({ nullable: true, type: Date }) revokedAt!: Date | null;
}

class CreatedApiKeyDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ enum: API_ROLES }) role!: string;
  @ApiProperty({ description: 'The key. It is shown once and cannot be recovered.' }) key!: string;
}

@ApiTags('api keys')
@Controller(`${API_PREFIX}/apikeys`)
export class ApiKeysController {
  constructor(private readonly keys: ApiKeyService) {}

  @Get()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'List API keys (never the keys themselves)' })
  @ApiOkResponse({ type: [ApiKeyDto] })
  list() {
    return this.keys.repo.list();
  }

  @Post()
  @Roles(...ADMIN_ROLES)
  @ApiAuthErrors({ body: true })
  @ApiOperation({ summary: 'Create an API key; the answer holds the key once' })
  @ApiCreatedResponse({ type: CreatedApiKeyDto })
  create(@Body() body: CreateApiKeyDto) {
    return this.keys.repo.create(body.name, body.role);
  }

  @Delete(':id')
  @HttpCode(204)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Revoke an API key' })
  @ApiNoContentResponse({ description: 'Revoked' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such key, or already revoked' })
  async revoke(@Param('id') id: string): Promise<void> {
    if (!(await this.keys.repo.revoke(id))) throw new NotFoundException(`no active API key with id ${id}`);
    this.keys.forget();
  }
}
