import { Module } from '@nestjs/common';
import { BackupsModule } from '../backups/backups.module';
import { JobsModule } from '../jobs/jobs.module';
import { VmsModule } from '../vms/vms.module';
import { ChainsController } from './chains.controller';
import { ChainsService } from './chains.service';

@Module({ imports: [VmsModule, JobsModule, BackupsModule], controllers: [ChainsController], providers: [ChainsService] })
export class ChainsModule {}
