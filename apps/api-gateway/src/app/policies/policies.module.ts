import { Module } from '@nestjs/common';
import { PoliciesController } from './policies.controller';
import { PoliciesService } from './policies.service';

/** Backup policies (CRUD, pause/resume, run now, history); the repositories come from the global DbModule. */
@Module({ controllers: [PoliciesController], providers: [PoliciesService] })
export class PoliciesModule {}
