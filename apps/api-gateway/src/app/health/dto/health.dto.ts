import { ApiProperty } from '@nestjs/swagger';

export class DependencyStateDto {
  @ApiProperty({ example: 'database' }) name!: string;
  @ApiProperty() ok!: boolean;
  @ApiProperty({ description: 'A critical dependency down makes the answer 503' }) critical!: boolean;
  @ApiProperty() latencyMs!: number;
  @ApiProperty({ required: false }) detail?: string;
}

export class HealthDto {
  @ApiProperty({ enum: ['ok', 'degraded', 'down'] }) status!: string;
  @ApiProperty() checkedAt!: string;
  @ApiProperty({ type: [DependencyStateDto] }) dependencies!: DependencyStateDto[];
}
