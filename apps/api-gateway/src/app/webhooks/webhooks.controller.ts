import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, Roles } from '../auth/roles.decorator';
import { requesterOf, type AuthedRequest } from '../auth/api-key.guard';
import { CreatedWebhookDto, CreateWebhookDto, DeliveriesQueryDto, WebhookDeliveryDto, WebhookDto } from './dto/webhook.dto';
import { WebhooksService } from './webhooks.service';

@ApiTags('webhooks')
@Controller(`${API_PREFIX}/webhooks`)
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Post()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({
    summary:
      'Register a webhook: events are POSTed as JSON with X-Sendense-Signature: sha256=<hex HMAC-SHA256 of the body under the secret>, retried with backoff on 5xx or no answer',
  })
  @ApiCreatedResponse({ type: CreatedWebhookDto })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'A webhook of that name exists' })
  @ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'SENDENSE_SECRET_KEY is not set' })
  create(@Body() b: CreateWebhookDto): Promise<CreatedWebhookDto> {
    return this.webhooks.create(b);
  }

  @Get()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'List webhooks (secrets are never shown)' })
  @ApiOkResponse({ type: [WebhookDto] })
  list(): Promise<WebhookDto[]> {
    return this.webhooks.list();
  }

  @Delete(':id')
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Delete a webhook and its deliveries' })
  @ApiOkResponse({ description: '{ deleted: id }' })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  delete(@Param('id') id: string): Promise<{ deleted: string }> {
    return this.webhooks.delete(id);
  }

  @Post(':id/test')
  @HttpCode(202)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Send a signed "test" event to the webhook (delivered and retried like any event)' })
  @ApiAcceptedResponse({ type: WebhookDeliveryDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  test(@Param('id') id: string, @Req() req: AuthedRequest): Promise<WebhookDeliveryDto> {
    return this.webhooks.test(id, requesterOf(req));
  }

  @Get(':id/deliveries')
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Recent deliveries of a webhook, newest first, with their attempts and last answer' })
  @ApiOkResponse({ type: [WebhookDeliveryDto] })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  deliveries(@Param('id') id: string, @Query() q: DeliveriesQueryDto): Promise<WebhookDeliveryDto[]> {
    return this.webhooks.deliveries(id, q.limit ?? 50);
  }
}
