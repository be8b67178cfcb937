import { BadRequestException, Injectable } from '@nestjs/common';
import { JobIds, JobNames, retentionKeepsSomething, type RetentionPolicy } from '@sendense/contracts';
import { RetentionPolicyRepository, type RetentionPolicyRecord } from '@sendense/db';
import { MaintenanceDispatcher } from '../jobs/maintenance.service';
import { RepositoriesService } from '../repositories/repositories.service';
import { VmsService } from '../vms/vms.service';
import { apiOfPolicy, type RetentionPolicyResponseDto, type RetentionResultDto } from './dto/retention.dto';

function view(p: RetentionPolicyRecord): RetentionPolicyResponseDto {
  return { id: p.id, repository_id: p.repositoryId, vm_context_id: p.vmContextId, ...apiOfPolicy(p) };
}

@Injectable()
export class RetentionService {
  constructor(
    private readonly policies: RetentionPolicyRepository,
    private readonly maintenance: MaintenanceDispatcher,
    private readonly repositories: RepositoriesService,
    private readonly vms: VmsService,
  ) {}

  async set(req: { repository: string; vmContextId?: string; policy: Required<RetentionPolicy> }): Promise<RetentionPolicyResponseDto> {
    const repo = await this.repositories.findByIdOrName(req.repository);
    if (req.vmContextId) await this.vms.resolve({ vmContextId: req.vmContextId });
    if (!retentionKeepsSomething(req.policy)) {
      throw new BadRequestException('a retention policy must keep something (keep_last, daily, weekly or monthly > 0)');
    }
    return view(await this.policies.set({ repositoryId: repo.id, vmContextId: req.vmContextId ?? null }, req.policy));
  }

  async list(): Promise<RetentionPolicyResponseDto[]> {
    return (await this.policies.list()).map(view);
  }

  async apply(req: { repository: string; vmContextId?: string; dryRun: boolean; requestedBy: string }): Promise<RetentionResultDto> {
    const repo = await this.repositories.findByIdOrName(req.repository);
    return (await this.maintenance.run(
      repo.id,
      JobNames.ApplyRetention,
      { repositoryId: repo.id, vmContextId: req.vmContextId, dryRun: req.dryRun, requestedBy: req.requestedBy },
      `${JobIds.retention(repo.id, req.vmContextId)}.${req.dryRun ? 'dry' : 'apply'}`,
      60 * 60_000,
    )) as RetentionResultDto;
  }
}
