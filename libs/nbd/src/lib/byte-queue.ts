/**
 * Received socket chunks, consumed front to back without copying the bulk
 * data: payloads are handed out as subarrays of the chunks Node gave us
 * (each 'data' chunk is a fresh allocation, so keeping views is safe).
 * Only small headers that straddle two chunks are copied.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private head = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Big-endian u32 at the read position without consuming it. Caller checks length >= 4. */
  peekUInt32BE(): number {
    const first = this.chunks[0];
    if (first.length - this.head >= 4) return first.readUInt32BE(this.head);
    // Rare: the 4 bytes straddle chunks; assemble them without consuming.
    let v = 0;
    let ci = 0;
    let pos = this.head;
    for (let i = 0; i < 4; i++) {
      while (pos >= this.chunks[ci].length) {
        ci++;
        pos = 0;
      }
      v = v * 256 + this.chunks[ci][pos++];
    }
    return v;
  }

  /** Take n contiguous bytes (copied only when they span chunks). Caller checks length. */
  take(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const m = Math.min(n - filled, c.length - this.head);
      c.copy(out, filled, this.head, this.head + m);
      filled += m;
      this.advance(m);
    }
    return out;
  }

  /** Take n bytes as a list of views (no copy), appended to out. */
  takeViews(n: number, out: Buffer[]): void {
    while (n > 0) {
      const c = this.chunks[0];
      const m = Math.min(n, c.length - this.head);
      out.push(c.subarray(this.head, this.head + m));
      n -= m;
      this.advance(m);
    }
  }

  /** Drop n bytes. */
  skip(n: number): void {
    while (n > 0) {
      const m = Math.min(n, this.chunks[0].length - this.head);
      n -= m;
      this.advance(m);
    }
  }

  private advance(m: number): void {
    this.head += m;
    this.total -= m;
    if (this.head === this.chunks[0].length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
