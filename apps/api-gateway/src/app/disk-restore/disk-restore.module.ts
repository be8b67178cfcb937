import { Module } from '@nestjs/common';
import { DiskExportController } from './disk-restore.controller';
import { DiskRestoreService } from './disk-restore.service';
import { DiskImageController } from './image.controller';

/** Whole-disk restores: instant-access exports and image downloads. */
@Module({ controllers: [DiskExportController, DiskImageController], providers: [DiskRestoreService], exports: [DiskRestoreService] })
export class DiskRestoreModule {}
