import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsIn, IsOptional, IsString, IsUrl, Length } from 'class-validator';
import { WebhookEvents } from '@sendense/contracts';
import { SafeName, StrictInt } from '../../common/validation';

export class CreateWebhookDto {
  @ApiProperty({ description: 'Unique name' }) @SafeName(100) name!: string;
  @ApiProperty({ description: 'http(s) URL the events are POSTed to', example: 'https://alerts.example.com/sendense' })
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false }, { message: 'url must be an http or https URL' })
  @Length(1, 2048)
  url!: string;
  @ApiPropertyOptional({ description: 'HMAC secret (16-256 characters); made and returned once when left out' })
  @IsOptional()
  @IsString()
  @Length(16, 256)
  secret?: string;
  @ApiPropertyOptional({ enum: WebhookEvents, isArray: true, description: 'Events it receives (none: all)' })
  @IsOptional()
  @ArrayMaxSize(WebhookEvents.length)
  @IsIn(WebhookEvents, { each: true })
  events?: string[];
}

export class WebhookDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty() url!: string;
  @ApiProperty({ enum: WebhookEvents, isArray: true, description: 'Empty: every event' }) events!: string[];
  @ApiProperty() enabled!: boolean;
  @ApiProperty() created_at!: string;
}

export class CreatedWebhookDto extends WebhookDto {
  @ApiPropertyOptional({ description: 'The secret made for it (shown once; only when the request gave none)' }) secret?: string;
}

export class WebhookDeliveryDto {
  @ApiProperty() id!: string;
  @ApiProperty() event!: string;
  @ApiProperty({ enum: ['pending', 'delivered', 'failed'] }) status!: string;
  @ApiProperty() attempts!: number;
  @ApiProperty({ nullable: true, type: Number }) last_status_code!: number | null;
  @ApiProperty({ nullable: true, type: String }) last_error!: string | null;
  @ApiProperty() created_at!: string;
  @ApiProperty({ nullable: true, type: String }) delivered_at!: string | null;
  @ApiProperty({ description: 'The JSON body sent (and signed)', type: 'object', additionalProperties: true }) payload!: Record<string, unknown>;
}

export class DeliveriesQueryDto {
  @ApiPropertyOptional({ default: 50, minimum: 1, maximum: 500 }) @IsOptional() @StrictInt({ min: 1, max: 500 }) limit?: number;
}
