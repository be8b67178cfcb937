import { DefaultJobOptions, JobIds, JobNames, QueueNames, sanitizeNode } from './queues';

describe('queue contracts', () => {
  it('names per-node queues safely', () => {
    expect(QueueNames.backup('Node-1.example.com')).toBe('backup.node-1-example-com');
    expect(() => sanitizeNode('')).toThrow(/no usable characters/);
  });

  it('gives every job retention and bounded attempts', () => {
    for (const name of Object.values(JobNames)) {
      const o = DefaultJobOptions[name];
      expect(o.removeOnComplete).toBeDefined();
      expect(o.removeOnFail).toBeDefined();
      expect(o.attempts).toBeGreaterThanOrEqual(1);
      // Webhook deliveries get a few more: a receiver briefly down still gets the event.
      expect(o.attempts).toBeLessThanOrEqual(name === JobNames.DeliverWebhook ? 5 : 3);
    }
  });

  it('uses one job id per VM so double clicks collapse', () => {
    expect(JobIds.backupVm('ctx-1')).toBe('backup.ctx-1');
    expect(JobIds.backupVm('ctx-1')).not.toBe(JobIds.backupVm('ctx-2'));
    expect(JobIds.consolidate('c', 0)).not.toBe(JobIds.consolidate('c', 1));
    expect(JobIds.retention('r')).toBe('retention.r.all');
    expect(JobIds.verify('b')).toBe('verify.b');
  });
});
