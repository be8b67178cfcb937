import { randomBytes, randomUUID } from 'node:crypto';
import { ConflictException, Inject, Injectable, NotFoundException, ServiceUnavailableException, type OnModuleDestroy } from '@nestjs/common';
import { Queue } from 'bullmq';
import { DefaultJobOptions, JobIds, JobNames, QueueNames, type WebhookEnvelope, type WebhookEvent } from '@sendense/contracts';
import type { GatewaySettings } from '@sendense/config';
import { Prisma, SecretBox, WebhookRepository, type DeliveryRecord, type WebhookRecord } from '@sendense/db';
import { SETTINGS } from '../common/tokens';
import type { CreatedWebhookDto, CreateWebhookDto, WebhookDeliveryDto, WebhookDto } from './dto/webhook.dto';

function view(w: WebhookRecord): WebhookDto {
  return { id: w.id, name: w.name, url: w.url, events: w.events, enabled: w.enabled, created_at: w.createdAt.toISOString() };
}

function deliveryView(d: DeliveryRecord): WebhookDeliveryDto {
  return {
    id: d.id,
    event: d.event,
    status: d.status,
    attempts: d.attempts,
    last_status_code: d.lastStatusCode,
    last_error: d.lastError,
    created_at: d.createdAt.toISOString(),
    delivered_at: d.deliveredAt?.toISOString() ?? null,
    payload: d.payload,
  };
}

/**
 * Webhooks: stored with their secret sealed (SENDENSE_SECRET_KEY); the
 * backup-worker signs and sends (DeliverWebhookJob on the `webhooks` queue).
 */
@Injectable()
export class WebhooksService implements OnModuleDestroy {
  private readonly queue: Queue;

  constructor(
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    @Inject(WebhookRepository) private readonly webhooks: WebhookRepository,
  ) {
    this.queue = new Queue(QueueNames.webhooks, {
      connection: { url: settings.REDIS_URL, maxRetriesPerRequest: null, enableOfflineQueue: false },
      prefix: settings.QUEUE_PREFIX,
    });
    this.queue.on('error', () => undefined);
  }

  async onModuleDestroy(): Promise<void> {
    await this.queue.close();
  }

  private box(): SecretBox {
    if (!this.settings.SENDENSE_SECRET_KEY)
      throw new ServiceUnavailableException('SENDENSE_SECRET_KEY is not set: webhook secrets cannot be stored (scripts/setup.sh makes one)');
    return new SecretBox(this.settings.SENDENSE_SECRET_KEY);
  }

  async create(b: CreateWebhookDto): Promise<CreatedWebhookDto> {
    const made = b.secret ? undefined : randomBytes(24).toString('base64url');
    const secret = b.secret ?? made ?? '';
    try {
      const w = await this.webhooks.create({ name: b.name, url: b.url, secretEnc: this.box().seal(secret), events: (b.events ?? []) as WebhookEvent[] });
      return { ...view(w), ...(made ? { secret: made } : {}) };
    } catch (err) {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') throw new ConflictException(`a webhook named ${b.name} exists`);
      throw err;
    }
  }

  async list(): Promise<WebhookDto[]> {
    return (await this.webhooks.list()).map(view);
  }

  private async find(id: string): Promise<WebhookRecord> {
    const w = await this.webhooks.find(id);
    if (!w) throw new NotFoundException(`no webhook with id ${id}`);
    return w;
  }

  async delete(id: string): Promise<{ deleted: string }> {
    await this.find(id);
    await this.webhooks.delete(id);
    return { deleted: id };
  }

  /** Queues a signed "test" event to this webhook (delivered and retried like any other). */
  async test(id: string, requestedBy: string): Promise<WebhookDeliveryDto> {
    const w = await this.find(id);
    const envelope: WebhookEnvelope = {
      id: randomUUID(),
      event: 'test',
      at: new Date().toISOString(),
      data: { message: 'test event from Sendense', webhook: { id: w.id, name: w.name }, requestedBy },
    };
    const d = await this.webhooks.addDelivery(w.id, 'test', envelope as unknown as Record<string, unknown>);
    await this.queue.add(JobNames.DeliverWebhook, { deliveryId: d.id }, { ...DefaultJobOptions.DeliverWebhookJob, jobId: JobIds.webhookDelivery(d.id) });
    return deliveryView(d);
  }

  async deliveries(id: string, limit: number): Promise<WebhookDeliveryDto[]> {
    await this.find(id);
    return (await this.webhooks.deliveries(id, limit)).map(deliveryView);
  }
}
