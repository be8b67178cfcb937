import { ConfigError, loadExporterConfig } from './exporter-config';

describe('loadExporterConfig', () => {
  it('has loopback defaults', () => {
    const c = loadExporterConfig({});
    expect(c).toMatchObject({
      rpcHost: '127.0.0.1',
      rpcPort: 8091,
      listenAddress: '127.0.0.1',
      portRange: { first: 10810, last: 10999 },
      stateDir: '/var/lib/sendense/nbd',
      allowedRoots: ['/var/lib/sendense'],
      tlsCredsDir: null,
      recordStore: 'database',
    });
    expect(c.nodeName.length).toBeGreaterThan(0);
  });

  it('reads every variable', () => {
    const c = loadExporterConfig({
      NBD_EXPORTER_HOST: '0.0.0.0',
      NBD_EXPORTER_PORT: '9000',
      NBD_LISTEN_ADDRESS: '::1',
      NBD_PORT_RANGE: '20000-20010',
      NBD_STATE_DIR: '/srv/nbd/',
      NBD_ALLOWED_ROOTS: '/srv/repo:/dev/mapper',
      NODE_NAME: 'store-1',
      NBD_TLS_CREDS_DIR: '/etc/sendense/tls',
      NBD_RECORD_STORE: 'file',
    });
    expect(c).toMatchObject({
      rpcHost: '0.0.0.0',
      rpcPort: 9000,
      listenAddress: '::1',
      portRange: { first: 20000, last: 20010 },
      stateDir: '/srv/nbd',
      allowedRoots: ['/srv/repo', '/dev/mapper'],
      nodeName: 'store-1',
      tlsCredsDir: '/etc/sendense/tls',
      recordStore: 'file',
    });
  });

  it.each([
    ['NBD_EXPORTER_PORT', 'http', /NBD_EXPORTER_PORT: "http" is not a port number/],
    ['NBD_EXPORTER_PORT', '70000', /NBD_EXPORTER_PORT: 70000 is outside 1-65535/],
    ['NBD_LISTEN_ADDRESS', 'localhost', /NBD_LISTEN_ADDRESS: "localhost" is not an IP address/],
    ['NBD_PORT_RANGE', '10810', /NBD_PORT_RANGE: "10810" is not FIRST-LAST/],
    ['NBD_PORT_RANGE', '11000-10000', /first port 11000 is above last port 10000/],
    ['NBD_STATE_DIR', 'var/nbd', /NBD_STATE_DIR: "var\/nbd" is not an absolute path/],
    ['NBD_STATE_DIR', '/var/nbd state', /NBD_STATE_DIR: .* contains a character that is not allowed/],
    ['NBD_ALLOWED_ROOTS', '/', /would allow exporting any file/],
    ['NBD_ALLOWED_ROOTS', '/srv:relative', /NBD_ALLOWED_ROOTS: "relative" is not an absolute path/],
    ['NODE_NAME', 'a b', /NODE_NAME: "a b" must be/],
    ['NBD_TLS_CREDS_DIR', '/etc/tls,x=y', /NBD_TLS_CREDS_DIR: .* not allowed/],
    ['NBD_RECORD_STORE', 'redis', /NBD_RECORD_STORE: "redis" is not one of database, file/],
    ['DATABASE_URL', 'postgres://x', /DATABASE_URL: must be a mysql/],
  ])('%s=%j is refused, naming the variable', (name, value, message) => {
    expect(() => loadExporterConfig({ [name]: value })).toThrow(message);
    expect(() => loadExporterConfig({ [name]: value })).toThrow(ConfigError);
  });
});
