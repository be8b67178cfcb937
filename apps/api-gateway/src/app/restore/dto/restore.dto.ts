import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsString, Length } from 'class-validator';
import type { EntryType, FileEntry, ListPage, PartitionInfo } from '@sendense/contracts';

export class MountDto {
  @ApiProperty({ description: 'The backup (restore point) to mount; any point of a chain' })
  @IsString()
  @Length(1, 64)
  backup_id!: string;
}

/** A partition as the restore-service reports it (its field names, passed through). */
export class PartitionDto implements PartitionInfo {
  @ApiProperty({ example: 'p1', description: 'Directory of the partition in the mount: files paths start with it' }) name!: string;
  @ApiProperty({ nullable: true, type: Number }) index!: number | null;
  @ApiProperty() offsetBytes!: number;
  @ApiProperty() sizeBytes!: number;
  @ApiProperty({ nullable: true, type: String, example: 'ext4' }) fsType!: string | null;
  @ApiProperty() mounted!: boolean;
  @ApiPropertyOptional({ description: 'Why it is not mounted' }) error?: string;
}

export class MountInfoDto {
  @ApiProperty({ format: 'uuid' }) mount_id!: string;
  @ApiProperty({ nullable: true, type: String }) backup_id!: string | null;
  @ApiProperty({ description: 'Root directory of the mount on the storage node' }) mount_path!: string;
  @ApiProperty() created_at!: string;
  @ApiProperty() last_access_at!: string;
  @ApiProperty({ nullable: true, type: String, example: 'gpt' }) partition_table!: string | null;
  @ApiProperty({ type: [PartitionDto] }) partitions!: PartitionDto[];
}

/** One directory entry (the restore-service's field names, passed through). */
export class FileEntryDto implements FileEntry {
  @ApiProperty() name!: string;
  @ApiProperty({ description: 'Mount-relative path, the form every endpoint accepts back' }) path!: string;
  @ApiProperty({ enum: ['file', 'dir', 'symlink', 'other'] }) type!: EntryType;
  @ApiProperty() size!: number;
  @ApiProperty({ example: '0644', description: 'Permission bits (mode & 0o7777) in octal, as ls and chmod write them' }) mode!: string;
  @ApiProperty() mtime!: string;
  @ApiPropertyOptional() symlinkTarget?: string;
  @ApiPropertyOptional({ description: 'The on-disk name is not valid UTF-8' }) nameNotUtf8?: boolean;
}

export class FileListingDto implements ListPage {
  @ApiProperty() path!: string;
  @ApiProperty({ type: [FileEntryDto] }) entries!: FileEntryDto[];
  @ApiProperty() offset!: number;
  @ApiProperty() limit!: number;
  @ApiProperty() total!: number;
}
