import { createServer, type Server } from 'node:net';
import { ExporterError } from '../exporter-error';
import { PortAllocator } from './port-allocator';

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port }, () => resolve(s));
  });
}

describe('PortAllocator', () => {
  // Below Linux's ephemeral range (32768+), where outgoing connections would take ports at random.
  const first = 21000 + Math.floor(Math.random() * 1000) * 10;

  it('hands out distinct ports to concurrent callers and skips ports held by other programs', async () => {
    const foreign = await listen(first + 1);
    try {
      const alloc = new PortAllocator('127.0.0.1', first, first + 4);
      const ports = await Promise.all([alloc.allocate(), alloc.allocate(), alloc.allocate(), alloc.allocate()]);
      expect(new Set(ports).size).toBe(4);
      expect(ports).not.toContain(first + 1);
      await expect(alloc.allocate()).rejects.toThrow(ExporterError);
      alloc.release(ports[0]);
      expect(await alloc.allocate()).toBe(ports[0]);
    } finally {
      foreign.close();
    }
  });

  it('never hands out a reserved (adopted) port', async () => {
    const alloc = new PortAllocator('127.0.0.1', first + 5, first + 6);
    alloc.reserve(first + 5);
    expect(await alloc.allocate()).toBe(first + 6);
    await expect(alloc.allocate()).rejects.toThrow(/no free TCP port in/);
  });
});
