/**
 * NBD URIs (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/uri.md):
 *   nbd://host[:port]/[export]
 *   nbd+unix:///[export]?socket=/path
 * TLS schemes (nbds, nbds+unix) are recognised so that we can refuse them
 * clearly: this client does not speak TLS yet.
 */

export interface NbdAddress {
  /** TCP host, or undefined for a Unix socket. */
  host?: string;
  port?: number;
  socketPath?: string;
  exportName: string;
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
  switch (scheme) {
    case 'nbd': {
      if (!url.hostname) throw new Error(`NBD URI "${uri}" has no host`);
      const port = url.port ? Number(url.port) : NBD_DEFAULT_PORT;
      // URL keeps IPv6 brackets in hostname; net.connect wants them stripped.
      return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port, exportName };
    }
    case 'nbd+unix': {
      const socketPath = url.searchParams.get('socket');
      if (!socketPath) throw new Error(`NBD URI "${uri}" needs ?socket=/path`);
      if (url.hostname) throw new Error(`NBD URI "${uri}": nbd+unix takes no host`);
      return { socketPath, exportName };
    }
    case 'nbds':
    case 'nbds+unix':
      throw new Error(`NBD URI "${uri}": TLS (${scheme}) is not supported by this client`);
    default:
      throw new Error(`NBD URI "${uri}": unsupported scheme "${scheme}" (use nbd:// or nbd+unix://)`);
  }
}

/** Format an address back into a URI (used in error messages and logs). */
export function formatNbdUri(addr: NbdAddress): string {
  const name = encodeURIComponent(addr.exportName).replace(/%2F/gi, '/');
  if (addr.socketPath !== undefined) {
    return `nbd+unix:///${name}?socket=${addr.socketPath}`;
  }
  const host = addr.host?.includes(':') ? `[${addr.host}]` : addr.host;
  const port = addr.port ?? NBD_DEFAULT_PORT;
  return `nbd://${host}${port === NBD_DEFAULT_PORT ? '' : `:${port}`}/${name}`;
}
