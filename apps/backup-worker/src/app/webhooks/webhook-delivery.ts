import { createHmac } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import {
  DefaultJobOptions,
  JobNames,
  WEBHOOK_DELIVERY_HEADER,
  WEBHOOK_EVENT_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  type DeliverWebhookJobData,
} from '@sendense/contracts';
import type { SecretBox, WebhookRepository } from '@sendense/db';
import type { WorkerMetrics } from '@sendense/metrics';
import type { JobHandler } from '../common/job-handler';

/** `sha256=` + hex HMAC-SHA256 of the exact body bytes. Receivers recompute it and compare in constant time. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

const TIMEOUT_MS = 10_000;

/**
 * POSTs one stored delivery. A 2xx delivers it; a 5xx, 408, 429 or a network
 * error is retried by BullMQ with backoff (DefaultJobOptions.DeliverWebhookJob);
 * another 4xx is the receiver refusing the event and is not retried.
 */
export class WebhookDeliveryHandler implements JobHandler {
  readonly jobName = JobNames.DeliverWebhook;

  constructor(
    private readonly webhooks: WebhookRepository,
    private readonly secrets: SecretBox | null,
    private readonly metrics: WorkerMetrics,
  ) {}

  async handle(job: Job<DeliverWebhookJobData>): Promise<{ status: number }> {
    const d = await this.webhooks.findDelivery(job.data.deliveryId);
    if (!d) throw new UnrecoverableError(`webhook delivery ${job.data.deliveryId} no longer exists (webhook deleted?)`);
    if (d.status === 'delivered') return { status: d.lastStatusCode ?? 200 };
    if (!this.secrets) throw new UnrecoverableError('SENDENSE_SECRET_KEY is not set on this worker: webhook secrets cannot be opened to sign the event');
    const attempts = job.opts.attempts ?? DefaultJobOptions.DeliverWebhookJob.attempts ?? 1;
    const last = job.attemptsMade + 1 >= attempts;
    const body = JSON.stringify(d.payload);
    let status: number | null = null;
    let error: string;
    let retry = true;
    try {
      const res = await fetch(d.webhook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'sendense-webhook/1',
          [WEBHOOK_SIGNATURE_HEADER]: signBody(this.secrets.open(d.webhook.secretEnc), body),
          [WEBHOOK_EVENT_HEADER]: d.event,
          [WEBHOOK_DELIVERY_HEADER]: d.id,
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      status = res.status;
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        await this.webhooks.recordAttempt(d.id, { status: 'delivered', statusCode: status, error: null });
        this.metrics.webhookDeliveries.inc({ result: 'delivered' });
        return { status };
      }
      error = `HTTP ${status} from ${d.webhook.url}`;
      retry = status >= 500 || status === 408 || status === 429;
    } catch (err) {
      error = `POST ${d.webhook.url} failed: ${err instanceof Error ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err)}`;
    }
    const final = last || !retry;
    await this.webhooks.recordAttempt(d.id, { status: final ? 'failed' : 'pending', statusCode: status, error });
    this.metrics.webhookDeliveries.inc({ result: final ? 'failed' : 'retry' });
    const msg = `webhook ${d.webhook.name}, event ${d.event}, attempt ${job.attemptsMade + 1}/${attempts}: ${error}`;
    throw retry ? new Error(msg) : new UnrecoverableError(msg);
  }
}
