import { Controller, Get, Inject, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { AuditLogRepository } from '@sendense/db';
import { API_PREFIX } from '../common/api-paths';
import { ADMIN_ROLES, Roles } from '../auth/roles.decorator';
import { AuditPageDto, AuditQueryDto } from './dto/audit.dto';

@ApiTags('audit')
@Controller(`${API_PREFIX}/audit`)
export class AuditController {
  constructor(@Inject(AuditLogRepository) private readonly audit: AuditLogRepository) {}

  @Get()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'The audit log, newest first: every request that changed something (who, what, target, when, result), filtered and paginated' })
  @ApiOkResponse({ type: AuditPageDto })
  async list(@Query() q: AuditQueryDto): Promise<AuditPageDto> {
    const page = await this.audit.page(
      {
        keyId: q.key_id,
        action: q.action,
        target: q.target,
        result: q.result,
        since: q.since ? new Date(q.since) : undefined,
        until: q.until ? new Date(q.until) : undefined,
      },
      { limit: q.limit ?? 50, offset: q.offset ?? 0 },
    );
    return {
      total: page.total,
      items: page.entries.map((e) => ({
        id: e.id,
        at: e.at.toISOString(),
        key_id: e.keyId,
        key_name: e.keyName,
        role: e.role,
        method: e.method,
        path: e.path,
        action: e.action,
        target: e.target,
        result: e.result,
        status: e.status,
        error: e.error,
        ip: e.ip,
      })),
    };
  }
}
