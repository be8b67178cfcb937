import { Module } from '@nestjs/common';
import { RestoreModule } from '../restore/restore.module';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';
import { MaintenanceDispatcher } from './maintenance.service';
import { RunListService } from './run-list.service';
import { RunRegistry } from './run-registry.service';

/** Backup runs (status, progress, cancel, list) and the dispatch of maintenance jobs the other features use. */
@Module({
  imports: [RestoreModule],
  controllers: [JobsController],
  providers: [JobsService, RunListService, RunRegistry, MaintenanceDispatcher],
  exports: [RunRegistry, MaintenanceDispatcher],
})
export class JobsModule {}
