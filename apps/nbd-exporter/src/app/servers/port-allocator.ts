import { createServer } from 'node:net';
import { internal } from '../exporter-error';

/**
 * Hands out TCP ports from the configured range. Reservations are kept in
 * process (so concurrent creates never get the same port) and each candidate
 * is bind-tested (so ports held by other programs are skipped). A server can
 * still lose a race for the port to another program; callers retry.
 */
export class PortAllocator {
  private readonly reserved = new Set<number>();
  private cursor: number;

  constructor(
    private readonly address: string,
    private readonly first: number,
    private readonly last: number,
  ) {
    this.cursor = first;
  }

  /** Mark a port as used (an adopted export's port after a restart). */
  reserve(port: number): void {
    this.reserved.add(port);
  }

  release(port: number): void {
    this.reserved.delete(port);
  }

  async allocate(): Promise<number> {
    const size = this.last - this.first + 1;
    for (let i = 0; i < size; i++) {
      const port = this.cursor;
      // Round robin, so a just-released port is not reused at once (a client may still be retrying it).
      this.cursor = port === this.last ? this.first : port + 1;
      if (this.reserved.has(port)) continue;
      this.reserved.add(port);
      if (await canBind(this.address, port)) return port;
      this.reserved.delete(port);
    }
    throw internal(`no free TCP port in ${this.first}-${this.last} on ${this.address}`);
  }
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
