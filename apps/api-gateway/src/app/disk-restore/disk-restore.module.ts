import { Module } from '@nestjs/common';
import { JobsModule } from '../jobs/jobs.module';
import { DiskExportController, DiskWritebackController } from './disk-restore.controller';
import { DiskRestoreService } from './disk-restore.service';
import { DiskWritebackService } from './disk-writeback.service';
import { DiskImageController } from './image.controller';

/** Whole-disk restores: instant-access exports, image downloads, writing a disk back into its VM. */
@Module({
  imports: [JobsModule],
  controllers: [DiskExportController, DiskWritebackController, DiskImageController],
  providers: [DiskRestoreService, DiskWritebackService],
  exports: [DiskRestoreService],
})
export class DiskRestoreModule {}
