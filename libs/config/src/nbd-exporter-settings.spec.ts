import { ConfigError } from './env-schema';
import { loadNbdExporterSettings, loadWorkerSettings, targetTransport } from './settings';

describe('loadNbdExporterSettings (the nbd-exporter, formerly its own loader)', () => {
  it('has loopback defaults', () => {
    const s = loadNbdExporterSettings({});
    expect(s).toMatchObject({
      NBD_EXPORTER_HOST: '127.0.0.1',
      NBD_EXPORTER_PORT: 8091,
      NBD_LISTEN_ADDRESS: '127.0.0.1',
      NBD_PORT_RANGE: { first: 10810, last: 10999 },
      NBD_STATE_DIR: '/var/lib/sendense/nbd',
      NBD_ALLOWED_ROOTS: ['/var/lib/sendense'],
      NBD_TLS_CREDS_DIR: null,
      NBD_RECORD_STORE: 'database',
      NBD_EXPORTER_METRICS_PORT: 9465,
      DATABASE_URL: 'mysql://root@127.0.0.1:3306/sendense',
    });
    expect(s.NODE_NAME.length).toBeGreaterThan(0);
  });

  it('reads every variable', () => {
    const s = loadNbdExporterSettings({
      NBD_EXPORTER_HOST: '0.0.0.0',
      NBD_EXPORTER_PORT: '9000',
      NBD_LISTEN_ADDRESS: '::1',
      NBD_PORT_RANGE: '20000-20010',
      NBD_STATE_DIR: '/srv/nbd/',
      NBD_ALLOWED_ROOTS: '/srv/repo:/dev/mapper',
      NODE_NAME: 'store-1',
      NBD_TLS_CREDS_DIR: '/etc/sendense/tls',
      NBD_RECORD_STORE: 'file',
      NBD_EXPORTER_METRICS_PORT: '0',
    });
    expect(s).toMatchObject({
      NBD_EXPORTER_HOST: '0.0.0.0',
      NBD_EXPORTER_PORT: 9000,
      NBD_LISTEN_ADDRESS: '::1',
      NBD_PORT_RANGE: { first: 20000, last: 20010 },
      NBD_STATE_DIR: '/srv/nbd',
      NBD_ALLOWED_ROOTS: ['/srv/repo', '/dev/mapper'],
      NODE_NAME: 'store-1',
      NBD_TLS_CREDS_DIR: '/etc/sendense/tls',
      NBD_RECORD_STORE: 'file',
      NBD_EXPORTER_METRICS_PORT: 0,
    });
  });

  it.each([
    ['NBD_EXPORTER_PORT', 'http', /NBD_EXPORTER_PORT="http" is invalid: expected a whole number/],
    ['NBD_EXPORTER_PORT', '70000', /NBD_EXPORTER_PORT="70000" is invalid: expected a number from 1 to 65535/],
    ['NBD_LISTEN_ADDRESS', 'localhost', /NBD_LISTEN_ADDRESS="localhost" is invalid: expected an IP address/],
    ['NBD_PORT_RANGE', '10810', /NBD_PORT_RANGE="10810" is invalid: expected FIRST-LAST/],
    ['NBD_PORT_RANGE', '11000-10000', /first port 11000 is above last port 10000/],
    ['NBD_PORT_RANGE', '0-10', /port 0 is outside 1-65535/],
    ['NBD_STATE_DIR', 'var/nbd', /NBD_STATE_DIR="var\/nbd" is invalid: "var\/nbd" is not an absolute path/],
    ['NBD_STATE_DIR', '/var/nbd state', /NBD_STATE_DIR=.* contains a character that is not allowed/],
    ['NBD_ALLOWED_ROOTS', '/', /would allow every file/],
    ['NBD_ALLOWED_ROOTS', ':', /no directory given/],
    ['NBD_ALLOWED_ROOTS', '/srv:relative', /NBD_ALLOWED_ROOTS=.*"relative" is not an absolute path/],
    ['NODE_NAME', 'a b', /NODE_NAME="a b" is invalid: expected 1-128 letters/],
    ['NBD_TLS_CREDS_DIR', '/etc/tls,x=y', /NBD_TLS_CREDS_DIR=.* not allowed/],
    ['NBD_RECORD_STORE', 'redis', /NBD_RECORD_STORE="redis" is invalid: expected one of database, file/],
    ['DATABASE_URL', 'postgres://x', /DATABASE_URL="postgres:\/\/x" is invalid: expected a mysql: or mariadb: URL/],
  ])('%s=%j is refused, naming the variable', (name, value, message) => {
    expect(() => loadNbdExporterSettings({ [name]: value })).toThrow(message);
    expect(() => loadNbdExporterSettings({ [name]: value })).toThrow(ConfigError);
  });
});

describe('NBD_SOCKET_GROUP and NBD_TARGET_TRANSPORT (Unix-socket targets)', () => {
  it('takes a group name or gid, refuses anything else', () => {
    expect(loadNbdExporterSettings({}).NBD_SOCKET_GROUP).toBe('');
    expect(loadNbdExporterSettings({ NBD_SOCKET_GROUP: ' sendense ' }).NBD_SOCKET_GROUP).toBe('sendense');
    expect(loadNbdExporterSettings({ NBD_SOCKET_GROUP: '998' }).NBD_SOCKET_GROUP).toBe('998');
    for (const bad of ['a b', '../etc', 'x;rm -rf /', '-g']) {
      expect(() => loadNbdExporterSettings({ NBD_SOCKET_GROUP: bad })).toThrow(/NBD_SOCKET_GROUP=.*invalid/);
    }
  });

  it('auto is unix only when the exporter and the Capture Agent are both on loopback', () => {
    const w = (NBD_TARGET_TRANSPORT: 'auto' | 'unix' | 'tcp', exp: string, cap: string) =>
      targetTransport({ NBD_TARGET_TRANSPORT, NBD_EXPORTER_URL: `tcp://${exp}:8091`, CAPTURE_AGENT_URL: `tcp://${cap}:8093` });
    expect(w('auto', '127.0.0.1', '127.0.0.1')).toBe('unix');
    expect(w('auto', 'localhost', '[::1]')).toBe('unix');
    expect(w('auto', '127.0.0.1', '10.0.0.7')).toBe('tcp');
    expect(w('auto', 'store-2.example', '127.0.0.1')).toBe('tcp');
    expect(w('tcp', '127.0.0.1', '127.0.0.1')).toBe('tcp');
    expect(w('unix', '10.0.0.1', '10.0.0.2')).toBe('unix');
    expect(loadWorkerSettings({}).NBD_TARGET_TRANSPORT).toBe('auto');
    expect(() => loadWorkerSettings({ NBD_TARGET_TRANSPORT: 'udp' })).toThrow(ConfigError);
  });
});

describe('QUEUE_PREFIX', () => {
  it('defaults to sendense and takes only a plain name', () => {
    expect(loadWorkerSettings({}).QUEUE_PREFIX).toBe('sendense');
    expect(loadWorkerSettings({ QUEUE_PREFIX: 'site-b_2' }).QUEUE_PREFIX).toBe('site-b_2');
    for (const bad of ['a:b', 'a b', 'x'.repeat(65), '{x}']) expect(() => loadWorkerSettings({ QUEUE_PREFIX: bad })).toThrow(/QUEUE_PREFIX/);
  });
});
