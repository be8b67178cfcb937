import { Global, Inject, Module, type DynamicModule, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import {
  ApiKeyRepository,
  AuditLogRepository,
  BackupPolicyRepository,
  BackupChainRepository,
  BackupJobRepository,
  JobEventRepository,
  NbdExportRepository,
  WebhookRepository,
  MetricsSourceRepository,
  BackupRepositoryRepository,
  BackupRunRepository,
  createPrismaClient,
  DatabaseProbe,
  RestoreMountRepository,
  RetentionPolicyRepository,
  VCenterRepository,
  VmContextRepository,
  VmDiskRepository,
  type PrismaClient,
} from '@sendense/db';
import { RestorePointLocator } from '../common/restore-points';
import { PRISMA } from '../common/tokens';

class DbLifecycle implements OnApplicationShutdown {
  constructor(@Inject(PRISMA) private readonly prisma: PrismaClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.prisma.$disconnect();
  }
}

/** The libs/db repositories the gateway uses; each is built on the one client. */
const REPOSITORIES = [
  ApiKeyRepository,
  AuditLogRepository,
  BackupPolicyRepository,
  BackupChainRepository,
  BackupJobRepository,
  JobEventRepository,
  NbdExportRepository,
  WebhookRepository,
  MetricsSourceRepository,
  BackupRepositoryRepository,
  BackupRunRepository,
  DatabaseProbe,
  RestoreMountRepository,
  RetentionPolicyRepository,
  VCenterRepository,
  VmContextRepository,
  VmDiskRepository,
] as const;

const repositoryProviders: Provider[] = REPOSITORIES.map((R) => ({ provide: R, inject: [PRISMA], useFactory: (p: PrismaClient) => new R(p) }));

/**
 * The database: one client and the libs/db repositories built on it (and the
 * restore point checks every restore starts with). Feature services inject
 * repositories, never the client.
 */
@Global()
@Module({})
export class DbModule {
  static forRoot(databaseUrl: string): DynamicModule {
    return {
      module: DbModule,
      providers: [{ provide: PRISMA, useFactory: () => createPrismaClient(databaseUrl) }, ...repositoryProviders, RestorePointLocator, DbLifecycle],
      exports: [PRISMA, ...REPOSITORIES, RestorePointLocator],
    };
  }
}
