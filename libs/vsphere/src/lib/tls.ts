import type { TLSSocket } from 'node:tls';
import { Agent, buildConnector } from 'undici';
import { TransportError } from './errors';

/**
 * TLS policy for the vCenter connection. vCenters usually present
 * self-signed certificates; those are accepted only when asked for:
 * `insecure` (no verification at all, tests and labs) or `thumbprint`
 * (pin the certificate's SHA-1 or SHA-256 fingerprint, as vSphere tools do).
 */
export interface TlsOptions {
  insecure?: boolean;
  /** Hex fingerprint, with or without colons, SHA-1 (40 hex) or SHA-256 (64 hex). */
  thumbprint?: string;
  /** Extra CA certificates (PEM) to trust. */
  ca?: string | string[];
}

export function normalizeThumbprint(tp: string): string {
  return tp.replace(/[^0-9a-f]/gi, '').toUpperCase();
}

export function createDispatcher(tls: TlsOptions = {}, connectTimeoutMs = 30000): Agent {
  if (tls.thumbprint) {
    const want = normalizeThumbprint(tls.thumbprint);
    if (want.length !== 40 && want.length !== 64) {
      throw new TransportError(`thumbprint must be a SHA-1 or SHA-256 fingerprint, got ${tls.thumbprint}`);
    }
    // Chain verification is replaced by the pin; the pin is checked once the
    // handshake is done and before any request is written.
    // No TLS session resumption: a resumed session shows no peer
    // certificate, and every connection must prove the pinned one.
    const base = buildConnector({ rejectUnauthorized: false, timeout: connectTimeoutMs, maxCachedSessions: 0 });
    const connect: buildConnector.connector = (opts, cb) =>
      base(opts, (err, socket) => {
        if (err || !socket) {
          cb(err ?? new Error('connect failed'), null);
          return;
        }
        const cert = (socket as TLSSocket).getPeerCertificate?.();
        const got = normalizeThumbprint(want.length === 40 ? (cert?.fingerprint ?? '') : (cert?.fingerprint256 ?? ''));
        if (got !== want) {
          socket.destroy();
          cb(new TransportError(`server certificate thumbprint ${got || '(none)'} does not match the configured ${want}`), null);
          return;
        }
        cb(null, socket);
      });
    return new Agent({ connect });
  }
  return new Agent({
    connect: { rejectUnauthorized: !tls.insecure, ca: tls.ca, timeout: connectTimeoutMs },
  });
}
