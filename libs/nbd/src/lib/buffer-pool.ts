/**
 * Reusable READ buffers. The copier returns each buffer once its WRITE is
 * acknowledged, so a long copy recycles a few MiB instead of allocating
 * (and page-faulting, and garbage-collecting) one buffer per request.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private retained = 0;

  constructor(private readonly maxRetainedBytes = 64 * 1024 * 1024) {}

  get(size: number): Buffer {
    const list = this.free.get(size);
    const b = list?.pop();
    if (b) {
      this.retained -= size;
      return b;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  put(buf: Buffer): void {
    if (this.retained + buf.length > this.maxRetainedBytes) return;
    let list = this.free.get(buf.length);
    if (!list) this.free.set(buf.length, (list = []));
    list.push(buf);
    this.retained += buf.length;
  }
}
