import { Module } from '@nestjs/common';
import { RestoreController } from './restore.controller';
import { RestoreProxyService } from './restore.service';

@Module({ controllers: [RestoreController], providers: [RestoreProxyService], exports: [RestoreProxyService] })
export class RestoreModule {}
