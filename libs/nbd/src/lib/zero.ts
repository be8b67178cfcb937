/** A shared zero-filled buffer: compared against for zero detection, written for emulated WRITE_ZEROES. */
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
