import type { TlsPsk } from '@sendense/contracts';
import { invalidArgument } from './capture-error';

/**
 * Checks the shape of a TLS pre-shared key from a request before it reaches
 * the NBD client. The message names what is wrong, never the key.
 */
export function checkTlsPsk(psk: TlsPsk, what: string): void {
  if (!psk || typeof psk !== 'object') throw invalidArgument(`${what}: tlsPsk must be { identity, key }`);
  if (typeof psk.identity !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(psk.identity)) {
    throw invalidArgument(`${what}: tlsPsk.identity must be 1-64 letters, digits or ._-`);
  }
  if (typeof psk.key !== 'string' || !/^(?:[0-9a-fA-F]{2}){16,64}$/.test(psk.key)) {
    throw invalidArgument(`${what}: tlsPsk.key must be 16-64 bytes in hex`);
  }
}
