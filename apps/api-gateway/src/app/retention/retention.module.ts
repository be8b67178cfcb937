import { Module } from '@nestjs/common';
import { JobsModule } from '../jobs/jobs.module';
import { RepositoriesModule } from '../repositories/repositories.module';
import { VmsModule } from '../vms/vms.module';
import { RetentionController } from './retention.controller';
import { RetentionService } from './retention.service';

@Module({ imports: [VmsModule, RepositoriesModule, JobsModule], controllers: [RetentionController], providers: [RetentionService] })
export class RetentionModule {}
