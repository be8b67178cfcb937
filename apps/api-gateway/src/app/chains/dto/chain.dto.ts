import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString } from 'class-validator';
import { BackupDto } from '../../backups/dto/backup.dto';
import { VmSelectorDto } from '../../vms/dto/vm.dto';
import { StrictInt } from '../../common/validation';

export class ChainQuery extends VmSelectorDto {
  @ApiPropertyOptional({ description: 'Only this disk' }) @IsOptional() @StrictInt({ max: 1023 }) disk_id?: number;
}

export class ConsolidateDto extends VmSelectorDto {
  @ApiProperty() @StrictInt({ max: 1023 }) disk_id!: number;
  @ApiPropertyOptional({ description: 'Merge the full and everything up to this restore point (default: all but the newest)' })
  @IsOptional()
  @IsString()
  up_to_backup_id?: string;
}

export class DiskChainDto {
  @ApiProperty() disk_id!: number;
  @ApiProperty() full_backup_id!: string;
  @ApiProperty() latest_backup_id!: string;
  @ApiProperty() total_backups!: number;
  @ApiProperty() total_size_bytes!: number;
  @ApiProperty() virtual_size_bytes!: number;
  @ApiProperty({ description: 'A restore point in this chain failed its CBT audit: the next backup is a full' }) suspect!: boolean;
  @ApiProperty({ nullable: true, type: String }) suspect_reason!: string | null;
  @ApiProperty({ type: [BackupDto], description: 'Oldest first' }) restore_points!: BackupDto[];
}

export class VmChainsDto {
  @ApiProperty() vm_context_id!: string;
  @ApiProperty() vm_name!: string;
  @ApiProperty({ type: [DiskChainDto] }) chains!: DiskChainDto[];
}

/** The storage layer's answer to a merge (its field names, passed through). */
export class ConsolidationDto {
  @ApiProperty({ description: 'The restore point that now holds the merged data' }) survivorId!: string;
  @ApiProperty({ type: [String] }) removedIds!: string[];
  @ApiProperty({ type: [String], description: 'Restore points whose backing file was changed to the survivor' }) rebasedIds!: string[];
}
