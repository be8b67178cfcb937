import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics (prom-client): the names every service exports, in one
 * place, so dashboards and alerts have one list to read (docs/metrics.md).
 * Each service makes its own registry with the process metrics (CPU, memory,
 * event loop) and the service label, and adds the families it moves.
 */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: 'sendense_' });
  return registry;
}

const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400];

/** Families the backup-worker moves. */
export function workerMetrics(registry: Registry) {
  return {
    backupJobs: new Counter({ name: 'sendense_backup_jobs_total', help: 'VM backups that ended, by backup type and result (completed, failed, retried)', labelNames: ['type', 'result'], registers: [registry] }),
    bytesTransferred: new Counter({ name: 'sendense_backup_bytes_transferred_total', help: 'Bytes copied into restore points', registers: [registry] }),
    backupDuration: new Histogram({ name: 'sendense_backup_duration_seconds', help: 'Duration of a VM backup from start to commit', labelNames: ['type'], buckets: DURATION_BUCKETS, registers: [registry] }),
    commitDuration: new Histogram({ name: 'sendense_backup_commit_duration_seconds', help: 'Duration of the commit phase (flush, qemu-img check, checksum, metadata)', buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300], registers: [registry] }),
    cbtFallbacks: new Counter({ name: 'sendense_cbt_fallbacks_total', help: 'Disks backed up in full although an incremental was asked for (CBT reset, no base, resized disk)', registers: [registry] }),
    verificationFailures: new Counter({ name: 'sendense_verification_failures_total', help: 'Restore point verifications that found a problem', registers: [registry] }),
    maintenanceJobs: new Counter({ name: 'sendense_maintenance_jobs_total', help: 'Maintenance jobs that ended, by job and result', labelNames: ['job', 'result'], registers: [registry] }),
    policyRuns: new Counter({ name: 'sendense_policy_runs_total', help: 'Backup policy runs that ended, by result (completed, partial, failed, skipped)', labelNames: ['result'], registers: [registry] }),
    webhookDeliveries: new Counter({ name: 'sendense_webhook_deliveries_total', help: 'Webhook delivery attempts, by result (delivered, retry, failed)', labelNames: ['result'], registers: [registry] }),
    repositoryUsed: new Gauge({ name: 'sendense_repository_used_bytes', help: 'Used bytes of the file system of a repository on this node', labelNames: ['repository'], registers: [registry] }),
    repositoryFree: new Gauge({ name: 'sendense_repository_free_bytes', help: 'Free bytes of the file system of a repository on this node', labelNames: ['repository'], registers: [registry] }),
  };
}
export type WorkerMetrics = ReturnType<typeof workerMetrics>;

/** Queue depth: jobs per queue (one backup and one maintenance queue per node) and state. */
export function queueGauge(registry: Registry, collect: (g: Gauge<'queue' | 'state'>) => Promise<void>): Gauge<'queue' | 'state'> {
  return new Gauge({
    name: 'sendense_queue_jobs',
    help: 'Jobs in a queue by state (waiting, active, delayed, failed, completed); backup.<node> and maintenance.<node> per storage node',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      await collect(this);
    },
  });
}

export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;

/**
 * A metrics listener for services whose API is not HTTP (TCP microservices,
 * the worker): GET /metrics on 127.0.0.1 only, so only local scrapers (a
 * Prometheus agent on the host) read it. Port 0 picks a free port (tests).
 */
export async function serveMetrics(registry: Registry, port: number, host = '127.0.0.1'): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    server,
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
