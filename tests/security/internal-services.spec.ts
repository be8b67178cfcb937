import { CaptureAgentClient, INTERNAL_TOKEN_HEADER, NbdExporterClient } from '@sendense/contracts';
import { startSystem, type System } from '../support/system';

/**
 * Finding 1: the internal services refuse callers without this install's
 * SENDENSE_INTERNAL_TOKEN (the built services, as a local user would reach them).
 */
describe('internal services need the internal token (issue 14, finding 1)', () => {
  let sys: System;
  beforeAll(async () => {
    sys = await startSystem();
  }, 240_000);
  afterAll(async () => {
    await sys?.stop();
  }, 60_000);

  const token = () => sys.env['SENDENSE_INTERNAL_TOKEN']!;

  it('restore-service: 401 without the token or with a wrong one, 200 with it; health stays open', async () => {
    const base = sys.env['RESTORE_SERVICE_URL']!;
    for (const path of ['/restore', '/restore/mounts']) {
      expect((await fetch(`${base}${path}`)).status).toBe(401);
      expect((await fetch(`${base}${path}`, { headers: { [INTERNAL_TOKEN_HEADER]: `${token()}x` } })).status).toBe(401);
    }
    const mount = await fetch(`${base}/restore/mount`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"imagePath":"/etc/passwd"}',
    });
    expect(mount.status).toBe(401);
    const ok = await fetch(`${base}/restore`, { headers: { [INTERNAL_TOKEN_HEADER]: token() } });
    expect(ok.status).not.toBe(401);
    expect(ok.status).toBeLessThan(500);
    expect((await fetch(`${base}/internal/health`)).status).toBe(200);
  });

  it('nbd-exporter: a client without the token is refused, with it answered', async () => {
    const url = sys.env['NBD_EXPORTER_URL']!;
    const anon = NbdExporterClient.connect({ url, timeoutMs: 10_000 });
    const wrong = NbdExporterClient.connect({ url, timeoutMs: 10_000, token: 'not-the-token-of-this-install' });
    const right = NbdExporterClient.connect({ url, timeoutMs: 10_000, token: token() });
    try {
      await expect(anon.listExports()).rejects.toThrow(/SENDENSE_INTERNAL_TOKEN/);
      await expect(
        wrong.createExport({ vmContextId: 'x', diskId: 0, type: 'full', kind: 'qcow2', filePath: '/etc/passwd', writable: true, backupJobId: 'x' }),
      ).rejects.toThrow(/SENDENSE_INTERNAL_TOKEN/);
      await expect(right.listExports()).resolves.toBeDefined();
    } finally {
      await Promise.all([anon.close(), wrong.close(), right.close()]);
    }
  });

  it('Capture Agent: a client without the token is refused, with it answered', async () => {
    const url = sys.env['CAPTURE_AGENT_URL']!;
    const anon = CaptureAgentClient.connect({ url, timeoutMs: 10_000 });
    const right = CaptureAgentClient.connect({ url, timeoutMs: 10_000, token: token() });
    try {
      await expect(anon.health()).rejects.toThrow(/SENDENSE_INTERNAL_TOKEN/);
      await expect(anon.cancel('any')).rejects.toThrow(/SENDENSE_INTERNAL_TOKEN/);
      await expect(right.health()).resolves.toMatchObject({ ok: true });
    } finally {
      await Promise.all([anon.close(), right.close()]);
    }
  });
});
