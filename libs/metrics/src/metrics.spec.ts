import { createRegistry, queueGauge, serveMetrics, workerMetrics } from './metrics';
import { parsePrometheusText, sampleValue } from './testing/prometheus-text';

describe('metrics', () => {
  it('serves the registry on loopback /metrics in the Prometheus text format, and nothing else', async () => {
    const registry = createRegistry('test-service');
    const m = workerMetrics(registry);
    queueGauge(registry, async (g) => {
      g.set({ queue: 'backup.n1', state: 'waiting' }, 3);
    });
    m.backupJobs.inc({ type: 'full', result: 'completed' });
    m.bytesTransferred.inc(4096);
    m.backupDuration.observe({ type: 'full' }, 12);
    const s = await serveMetrics(registry, 0);
    try {
      const res = await fetch(`http://127.0.0.1:${s.port}/metrics`);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const f = parsePrometheusText(await res.text());
      expect(f.get('sendense_backup_jobs_total')?.type).toBe('counter');
      expect(sampleValue(f, 'sendense_backup_jobs_total', { type: 'full', result: 'completed', service: 'test-service' })).toBe(1);
      expect(sampleValue(f, 'sendense_backup_bytes_transferred_total')).toBe(4096);
      expect(f.get('sendense_backup_duration_seconds')?.type).toBe('histogram');
      expect(sampleValue(f, 'sendense_backup_duration_seconds_bucket', { le: '5' })).toBe(0);
      expect(sampleValue(f, 'sendense_backup_duration_seconds_bucket', { le: '15' })).toBe(1);
      expect(sampleValue(f, 'sendense_queue_jobs', { queue: 'backup.n1', state: 'waiting' })).toBe(3);
      expect(f.has('sendense_process_cpu_user_seconds_total')).toBe(true);
      expect((await fetch(`http://127.0.0.1:${s.port}/other`)).status).toBe(404);
      expect(s.server.address()).toMatchObject({ address: '127.0.0.1' });
    } finally {
      await s.close();
    }
  });

  it('the reader refuses what is not the text format', () => {
    expect(() => parsePrometheusText('# TYPE a counter\na{x="1"} one\n')).toThrow(/line 2: value "one"/);
    expect(() => parsePrometheusText('b 1\n')).toThrow(/no declared family/);
    expect(() => parsePrometheusText('# TYPE a counter\na{x="1 2\n')).toThrow(/line 2/);
    const f = parsePrometheusText('# HELP a h\n# TYPE a gauge\na{x="q\\"\\n"} 2.5e3 1700000000\n');
    expect(f.get('a')?.samples).toEqual([{ name: 'a', labels: { x: 'q"\n' }, value: 2500 }]);
  });
});
