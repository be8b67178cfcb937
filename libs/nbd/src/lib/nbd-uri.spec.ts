import * as api from '../index';
import { formatNbdUri, parseNbdUri } from './nbd-uri';

describe('NBD URIs', () => {
  it('parses TCP and Unix URIs', () => {
    expect(parseNbdUri('nbd://host.example:10900/disk%201')).toEqual({ host: 'host.example', port: 10900, exportName: 'disk 1' });
    expect(parseNbdUri('nbd://[::1]/')).toEqual({ host: '::1', port: 10809, exportName: '' });
    expect(parseNbdUri('nbd+unix:///vm/disk0?socket=/run/nbd.sock')).toEqual({ socketPath: '/run/nbd.sock', exportName: 'vm/disk0' });
  });

  it('parses the TLS schemes with the PSK identity from the user part', () => {
    expect(parseNbdUri('nbds://sendense@127.0.0.1:10900/x')).toEqual({ host: '127.0.0.1', port: 10900, exportName: 'x', tls: true, tlsUsername: 'sendense' });
    expect(parseNbdUri('nbds+unix:///x?socket=/s')).toEqual({ socketPath: '/s', exportName: 'x', tls: true });
    expect(formatNbdUri(parseNbdUri('nbds://sendense@h:1234/x'))).toBe('nbds://sendense@h:1234/x');
  });

  it('refuses what it cannot serve, saying why', () => {
    expect(() => parseNbdUri('not a uri')).toThrow(/invalid NBD URI/);
    expect(() => parseNbdUri('nbd+unix:///x')).toThrow(/socket=/);
    expect(() => parseNbdUri('http://h/x')).toThrow(/unsupported scheme/);
  });

  it('formats addresses back into URIs', () => {
    expect(formatNbdUri({ host: 'h', port: 10809, exportName: 'a b' })).toBe('nbd://h/a%20b');
    expect(formatNbdUri({ host: '::1', port: 1234, exportName: '' })).toBe('nbd://[::1]:1234/');
    expect(formatNbdUri({ socketPath: '/s', exportName: 'x' })).toBe('nbd+unix:///x?socket=/s');
  });

  it('exports the public API from the package root', () => {
    expect(typeof api.NbdClient.connect).toBe('function');
    expect(typeof api.copyExtents).toBe('function');
    expect(typeof api.allocatedExtents).toBe('function');
    expect(typeof api.dirtyExtents).toBe('function');
    expect(typeof api.listExports).toBe('function');
    expect(api.DEFAULT_REQUEST_SIZE).toBe(256 * 1024);
  });
});
