import { NbdExporterClient, NbdExporterError } from '@sendense/contracts';

describe('NbdExporterClient', () => {
  it('turns an unreachable exporter into an NbdExporterError (INTERNAL) naming the request', async () => {
    // Port 1 on loopback: nothing listens there.
    const client = NbdExporterClient.connect({ url: 'tcp://127.0.0.1:1', timeoutMs: 5000 });
    try {
      const err = await client.listExports().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NbdExporterError);
      expect(err).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('nbd-exporter nbd-exporter.listExports failed') });
    } finally {
      await client.close();
    }
  });

  it('refuses an address that is not tcp://', () => {
    expect(() => NbdExporterClient.connect({ url: 'http://127.0.0.1:8091' })).toThrow(/is not tcp:\/\/host:port/);
  });
});
