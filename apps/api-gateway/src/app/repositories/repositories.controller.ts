import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, READ_ROLES, Roles } from '../auth/roles.decorator';
import { CreateRepositoryDto, RepositoryDto, RepositorySpaceDto } from './dto/repository.dto';
import { RepositoriesService } from './repositories.service';

@ApiTags('repositories')
@Controller(`${API_PREFIX}/repositories`)
export class RepositoriesController {
  constructor(private readonly repos: RepositoriesService) {}

  @Post()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Create a backup repository' })
  @ApiCreatedResponse({ type: RepositoryDto, description: 'Created' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body, unsupported type or unusable path' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The name is taken' })
  create(@Body() b: CreateRepositoryDto): Promise<RepositoryDto> {
    return this.repos.create({ name: b.name, type: b.type, path: b.path, storageNode: b.storage_node, cbtAuditSamples: b.cbt_audit_samples });
  }

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'List repositories' })
  @ApiOkResponse({ type: [RepositoryDto], description: 'Repositories' })
  list(): Promise<RepositoryDto[]> {
    return this.repos.list();
  }

  @Delete(':id')
  @HttpCode(204)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Delete an empty repository (id or name); its directory is left on disk' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such repository' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'It still holds backups (delete them first) or a retention policy' })
  async remove(@Param('id') id: string): Promise<void> {
    await this.repos.remove(id);
  }

  @Get(':id/space')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Total, free and used space of a repository (id or name)' })
  @ApiOkResponse({ type: RepositorySpaceDto, description: 'Space' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such repository' })
  space(@Param('id') id: string): Promise<RepositorySpaceDto> {
    return this.repos.space(id);
  }
}
