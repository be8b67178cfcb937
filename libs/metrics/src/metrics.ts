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
    backupJobs: new Counter({
      name: 'sendense_backup_jobs_total',
      help: 'VM backups that ended, by backup type and result (completed, failed, retried)',
      labelNames: ['type', 'result'],
      registers: [registry],
    }),
    bytesTransferred: new Counter({ name: 'sendense_backup_bytes_transferred_total', help: 'Bytes copied into restore points', registers: [registry] }),
    backupDuration: new Histogram({
      name: 'sendense_backup_duration_seconds',
      help: 'Duration of a VM backup from start to commit',
      labelNames: ['type'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    commitDuration: new Histogram({
      name: 'sendense_backup_commit_duration_seconds',
      help: 'Duration of the commit phase (flush, qemu-img check, checksum, metadata)',
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
      registers: [registry],
    }),
    cbtFallbacks: new Counter({
      name: 'sendense_cbt_fallbacks_total',
      help: 'Disks backed up in full although an incremental was asked for (CBT reset, no base, resized disk)',
      registers: [registry],
    }),
    verificationFailures: new Counter({
      name: 'sendense_verification_failures_total',
      help: 'Restore point verifications that found a problem',
      registers: [registry],
    }),
    maintenanceJobs: new Counter({
      name: 'sendense_maintenance_jobs_total',
      help: 'Maintenance jobs that ended, by job and result',
      labelNames: ['job', 'result'],
      registers: [registry],
    }),
    policyRuns: new Counter({
      name: 'sendense_policy_runs_total',
      help: 'Backup policy runs that ended, by result (completed, partial, failed, skipped)',
      labelNames: ['result'],
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: 'sendense_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by result (delivered, retry, failed)',
      labelNames: ['result'],
      registers: [registry],
    }),
    repositoryUsed: new Gauge({
      name: 'sendense_repository_used_bytes',
      help: 'Used bytes of the file system of a repository on this node',
      labelNames: ['repository'],
      registers: [registry],
    }),
    repositoryFree: new Gauge({
      name: 'sendense_repository_free_bytes',
      help: 'Free bytes of the file system of a repository on this node',
      labelNames: ['repository'],
      registers: [registry],
    }),
  };
}
export type WorkerMetrics = ReturnType<typeof workerMetrics>;

/** Families the Capture Agent moves; `sessions` reads the snapshot sessions it holds now. */
export function captureMetrics(registry: Registry, sessions: () => number) {
  new Gauge({
    name: 'sendense_capture_sessions',
    help: 'Snapshot sessions the Capture Agent holds (a snapshot of a VM being backed up)',
    registers: [registry],
    collect() {
      this.set(sessions());
    },
  });
  return {
    calls: new Counter({
      name: 'sendense_capture_calls_total',
      help: 'Capture Agent requests by call (prepare, copy, release, restoreDisk) and result (ok, error)',
      labelNames: ['call', 'result'],
      registers: [registry],
    }),
    bytesRead: new Counter({
      name: 'sendense_capture_bytes_read_total',
      help: 'Bytes read from snapshots and written into backup targets',
      registers: [registry],
    }),
    bytesZeroed: new Counter({
      name: 'sendense_capture_bytes_zeroed_total',
      help: 'Bytes written as NBD WRITE_ZEROES (changed blocks now zero)',
      registers: [registry],
    }),
    copyDuration: new Histogram({
      name: 'sendense_capture_disk_copy_duration_seconds',
      help: 'Copy of one disk from its snapshot into its target',
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
  };
}
export type CaptureMetrics = ReturnType<typeof captureMetrics>;

/** What the nbd-exporter's gauges read at each scrape. */
export interface ExporterCounts {
  /** Exports of this node by kind (qcow2, raw, block) and state. */
  exports: { kind: string; state: string; count: number }[];
  /** NBD server processes alive, by server (qemu-nbd, nbd-server). */
  servers: { server: string; count: number }[];
}

/** Families the nbd-exporter moves; `counts` is read at each scrape. */
export function exporterMetrics(registry: Registry, counts: () => Promise<ExporterCounts>) {
  new Gauge({
    name: 'sendense_nbd_exports',
    help: 'NBD exports of this node by kind (qcow2, raw, block) and state',
    labelNames: ['kind', 'state'],
    registers: [registry],
    async collect() {
      const c = await counts();
      this.reset();
      for (const e of c.exports) this.set({ kind: e.kind, state: e.state }, e.count);
    },
  });
  new Gauge({
    name: 'sendense_nbd_servers_running',
    help: 'NBD server processes of this node that are alive, by server (qemu-nbd, nbd-server)',
    labelNames: ['server'],
    registers: [registry],
    async collect() {
      const c = await counts();
      this.reset();
      for (const s of c.servers) this.set({ server: s.server }, s.count);
    },
  });
  return {
    exportsCreated: new Counter({
      name: 'sendense_nbd_exports_created_total',
      help: 'NBD exports created, by kind',
      labelNames: ['kind'],
      registers: [registry],
    }),
    exportsRemoved: new Counter({
      name: 'sendense_nbd_exports_removed_total',
      help: 'NBD exports removed, by why (request, idle, orphan: its image was gone, dead: its server had died)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    reconcileActions: new Counter({
      name: 'sendense_nbd_reconcile_actions_total',
      help: 'What reconciliation at start did: kept an export, dropped a record, stopped a server, deleted a config',
      labelNames: ['action'],
      registers: [registry],
    }),
  };
}
export type ExporterMetrics = ReturnType<typeof exporterMetrics>;

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
