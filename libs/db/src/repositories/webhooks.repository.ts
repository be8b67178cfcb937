import { randomUUID } from 'node:crypto';
import type { WebhookEvent } from '@sendense/contracts';
import type { PrismaClient } from '../prisma-client';
import { Prisma, type Webhook, type WebhookDelivery } from '../generated/client';

export interface WebhookRecord {
  id: string;
  name: string;
  url: string;
  /** Sealed secret (SecretBox); opened only by whoever signs. */
  secretEnc: string;
  /** Empty: every event. */
  events: WebhookEvent[];
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface DeliveryRecord {
  id: string;
  webhookId: string;
  event: string;
  payload: Record<string, unknown>;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
}

function toWebhook(r: Webhook): WebhookRecord {
  return { ...r, events: (Array.isArray(r.events) ? r.events : []) as WebhookEvent[] };
}

function toDelivery(r: WebhookDelivery): DeliveryRecord {
  return { ...r, payload: r.payload as Record<string, unknown>, status: r.status as DeliveryRecord['status'] };
}

/** webhooks and webhook_deliveries. */
export class WebhookRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(w: { name: string; url: string; secretEnc: string; events: WebhookEvent[] }): Promise<WebhookRecord> {
    return toWebhook(await this.prisma.webhook.create({ data: { id: randomUUID(), ...w, events: w.events } }));
  }

  async list(): Promise<WebhookRecord[]> {
    return (await this.prisma.webhook.findMany({ orderBy: { name: 'asc' } })).map(toWebhook);
  }

  async find(id: string): Promise<WebhookRecord | null> {
    const r = await this.prisma.webhook.findUnique({ where: { id } });
    return r ? toWebhook(r) : null;
  }

  async delete(id: string): Promise<boolean> {
    return (await this.prisma.webhook.deleteMany({ where: { id } })).count > 0;
  }

  /** Enabled webhooks that take this event. */
  async subscribers(event: WebhookEvent): Promise<WebhookRecord[]> {
    const all = (await this.prisma.webhook.findMany({ where: { enabled: true } })).map(toWebhook);
    return all.filter((w) => w.events.length === 0 || w.events.includes(event));
  }

  async addDelivery(webhookId: string, event: string, payload: Record<string, unknown>): Promise<DeliveryRecord> {
    return toDelivery(await this.prisma.webhookDelivery.create({ data: { id: randomUUID(), webhookId, event, payload: payload as Prisma.InputJsonObject } }));
  }

  async findDelivery(id: string): Promise<(DeliveryRecord & { webhook: WebhookRecord }) | null> {
    const r = await this.prisma.webhookDelivery.findUnique({ where: { id }, include: { webhook: true } });
    return r ? { ...toDelivery(r), webhook: toWebhook(r.webhook) } : null;
  }

  /** One attempt's outcome: delivered, or still pending (retried), or failed for good. */
  async recordAttempt(id: string, a: { status: DeliveryRecord['status']; statusCode: number | null; error: string | null }): Promise<DeliveryRecord> {
    const r = await this.prisma.webhookDelivery.update({
      where: { id },
      data: {
        status: a.status,
        attempts: { increment: 1 },
        lastStatusCode: a.statusCode,
        lastError: a.error?.slice(0, 4000) ?? null,
        ...(a.status === 'delivered' ? { deliveredAt: new Date() } : {}),
      },
    });
    return toDelivery(r);
  }

  /** Newest first. */
  async deliveries(webhookId: string, limit: number): Promise<DeliveryRecord[]> {
    return (await this.prisma.webhookDelivery.findMany({ where: { webhookId }, orderBy: { createdAt: 'desc' }, take: limit })).map(toDelivery);
  }
}
