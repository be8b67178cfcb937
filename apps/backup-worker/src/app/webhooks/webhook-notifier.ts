import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { JobIds, JobNames, QueueNames, type WebhookEnvelope, type WebhookEvent } from '@sendense/contracts';
import type { WebhookRepository } from '@sendense/db';
import type { Producers } from '../common/producers';

/**
 * Turns an event into one delivery per subscribed webhook: the envelope is
 * stored (so the exact body is signed and retried), then a delivery job is
 * queued on the `webhooks` queue (retried with backoff by BullMQ).
 * Notifying never fails the caller: a backup's outcome does not depend on a receiver.
 */
export class WebhookNotifier {
  private readonly log = new Logger('WebhookNotifier');

  constructor(
    private readonly webhooks: WebhookRepository,
    private readonly producers: Producers,
  ) {}

  async notify(event: WebhookEvent, data: Record<string, unknown>): Promise<number> {
    try {
      const subscribers = await this.webhooks.subscribers(event);
      for (const w of subscribers) {
        const envelope: WebhookEnvelope = { id: randomUUID(), event, at: new Date().toISOString(), data };
        const d = await this.webhooks.addDelivery(w.id, event, envelope as unknown as Record<string, unknown>);
        await this.producers.add(QueueNames.webhooks, JobNames.DeliverWebhook, { deliveryId: d.id }, JobIds.webhookDelivery(d.id));
      }
      return subscribers.length;
    } catch (err) {
      this.log.error(`webhook event ${event} not queued: ${err instanceof Error ? err.message : String(err)}`);
      return 0;
    }
  }
}
