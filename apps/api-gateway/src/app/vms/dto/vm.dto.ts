import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString } from 'class-validator';

/** Which VM a request is about: its name (unique across vCenters) or its context id. */
export class VmSelectorDto {
  @ApiPropertyOptional({ example: 'pgtest2' }) @IsOptional() @IsString() vm_name?: string;
  @ApiPropertyOptional({ example: 'ctx-pgtest2-1a2b3c4d' }) @IsOptional() @IsString() vm_context_id?: string;
}

export class VmDiskDto {
  @ApiProperty({ description: "Index of the disk in the VM's backups (disk-<n>); never reused" }) disk_id!: number;
  @ApiProperty() device_key!: number;
  @ApiProperty({ nullable: true, type: String }) label!: string | null;
  @ApiProperty() capacity_bytes!: number;
  @ApiProperty({ nullable: true, type: String, description: 'CBT change id of the last committed backup' }) last_change_id!: string | null;
  @ApiProperty({ nullable: true, type: String }) last_backup_id!: string | null;
}

export class VmDto {
  @ApiProperty({ example: 'ctx-pgtest2-1a2b3c4d' }) context_id!: string;
  @ApiProperty({ example: 'pgtest2' }) vm_name!: string;
  @ApiProperty({ nullable: true, type: String }) vcenter_id!: string | null;
  @ApiProperty({ example: 'vm-42' }) moref!: string;
  @ApiProperty({ nullable: true, type: String }) instance_uuid!: string | null;
  @ApiProperty() cbt_enabled!: boolean;
  @ApiProperty({ enum: ['unknown', 'enabled', 'disabled', 'reset'] }) cbt_state!: string;
  @ApiProperty({ type: [VmDiskDto] }) disks!: VmDiskDto[];
}
