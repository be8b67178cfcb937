import { ApiProperty } from '@nestjs/swagger';
import { IsIn } from 'class-validator';
import { API_ROLES, type ApiRole } from '@sendense/db';
import { SafeName } from '../../common/validation';

export class CreateApiKeyDto {
  @ApiProperty({ example: 'backup operator laptop' })
  @SafeName()
  name!: string;

  @ApiProperty({ enum: API_ROLES })
  @IsIn(API_ROLES)
  role!: ApiRole;
}

export class ApiKeyDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ enum: API_ROLES }) role!: string;
  @ApiProperty({ description: 'The visible part of the key (sdk_<prefix>_...)' }) prefix!: string;
  @ApiProperty() createdAt!: Date;
  @ApiProperty({ nullable: true, type: Date }) lastUsedAt!: Date | null;
  @ApiProperty({ nullable: true, type: Date }) revokedAt!: Date | null;
}

export class CreatedApiKeyDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ enum: API_ROLES }) role!: string;
  @ApiProperty({ description: 'The key. It is shown once and cannot be recovered.' }) key!: string;
}
