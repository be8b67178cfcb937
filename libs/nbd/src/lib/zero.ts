/** A shared zero-filled buffer: compared against for zero detection, viewed for holes. */
export const ZERO_BLOCK_SIZE = 1024 * 1024;
export const ZEROES: Buffer = Buffer.alloc(ZERO_BLOCK_SIZE);

/** True when buf is all zero bytes (memcmp against ZEROES; stops at the first non-zero). */
export function isZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZERO_BLOCK_SIZE) {
    const n = Math.min(ZERO_BLOCK_SIZE, buf.length - at);
    // Buffer.compare on views is a native memcmp, far faster than a JS loop.
    if (Buffer.compare(buf.subarray(at, at + n), ZEROES.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** Views of ZEROES covering n bytes (no allocation of n bytes). */
export function zeroViews(n: number, out: Buffer[]): void {
  while (n > 0) {
    const m = Math.min(n, ZERO_BLOCK_SIZE);
    out.push(ZEROES.subarray(0, m));
    n -= m;
  }
}
