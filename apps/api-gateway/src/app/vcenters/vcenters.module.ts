import { Module } from '@nestjs/common';
import { VCentersController } from './vcenters.controller';
import { VCentersService } from './vcenters.service';

@Module({ controllers: [VCentersController], providers: [VCentersService] })
export class VCentersModule {}
