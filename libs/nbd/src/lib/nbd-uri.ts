/**
 * NBD URIs (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/uri.md):
 *   nbd://host[:port]/[export]
 *   nbd+unix:///[export]?socket=/path
 *   nbds://[identity@]host[:port]/[export], nbds+unix:///[export]?socket=/path
 * The TLS schemes need a pre-shared key from the caller (NbdClientOptions.tlsPsk):
 * this client speaks TLS-PSK only (no x509), and never falls back to plain NBD.
 */

export interface NbdAddress {
  /** TCP host, or undefined for a Unix socket. */
  host?: string;
  port?: number;
  socketPath?: string;
  exportName: string;
  /** nbds: NBD_OPT_STARTTLS before anything else; the connection fails rather than go on in plain text. */
  tls?: boolean;
  /** TLS-PSK identity from the URI's user part (libnbd's convention). */
  tlsUsername?: string;
}

export const NBD_DEFAULT_PORT = 10809;

export function parseNbdUri(uri: string): NbdAddress {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new Error(`invalid NBD URI "${uri}"`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  // The export name is the path without its leading slash, percent-decoded.
  const exportName = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const tls = scheme === 'nbds' || scheme === 'nbds+unix';
  const tlsPart = tls ? { tls: true, ...(url.username ? { tlsUsername: decodeURIComponent(url.username) } : {}) } : {};
  switch (scheme) {
    case 'nbd':
    case 'nbds': {
      if (!url.hostname) throw new Error(`NBD URI "${uri}" has no host`);
      const port = url.port ? Number(url.port) : NBD_DEFAULT_PORT;
      // URL keeps IPv6 brackets in hostname; net.connect wants them stripped.
      return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port, exportName, ...tlsPart };
    }
    case 'nbd+unix':
    case 'nbds+unix': {
      const socketPath = url.searchParams.get('socket');
      if (!socketPath) throw new Error(`NBD URI "${uri}" needs ?socket=/path`);
      if (url.hostname) throw new Error(`NBD URI "${uri}": ${scheme} takes no host`);
      return { socketPath, exportName, ...tlsPart };
    }
    default:
      throw new Error(`NBD URI "${uri}": unsupported scheme "${scheme}" (use nbd://, nbds://, nbd+unix:// or nbds+unix://)`);
  }
}

/** Format an address back into a URI (used in error messages and logs). */
export function formatNbdUri(addr: NbdAddress): string {
  const name = encodeURIComponent(addr.exportName).replace(/%2F/gi, '/');
  const s = addr.tls ? 's' : '';
  if (addr.socketPath !== undefined) {
    return `nbd${s}+unix:///${name}?socket=${addr.socketPath}`;
  }
  const host = addr.host?.includes(':') ? `[${addr.host}]` : addr.host;
  const port = addr.port ?? NBD_DEFAULT_PORT;
  const user = addr.tls && addr.tlsUsername ? `${encodeURIComponent(addr.tlsUsername)}@` : '';
  return `nbd${s}://${user}${host}${port === NBD_DEFAULT_PORT ? '' : `:${port}`}/${name}`;
}
