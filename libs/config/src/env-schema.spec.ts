import { absPath, bool, ConfigError, duration, int, loadEnv, oneOf, port, shownValue, str, url } from './env-schema';
import { allEnvGroups, loadGatewaySettings, loadRestoreSettings, tcpAddress } from './settings';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

describe('loadEnv', () => {
  const schema = {
    A: port('a port', 8080),
    B: bool('flag', false),
    C: url('db', ['mysql:']),
    D: duration('idle', '1h'),
    E: oneOf('mode', ['x', 'y'] as const, 'x'),
    F: absPath('dir', '/var/x/'),
    G: int('n', 3, 1, 5),
    H: str('s', 'def'),
  };

  it('applies defaults and parses values', () => {
    expect(loadEnv(schema, { C: 'mysql://h/db', D: '90s', B: 'yes', E: 'y', G: '5' })).toEqual({
      A: 8080,
      B: true,
      C: 'mysql://h/db',
      D: 90_000,
      E: 'y',
      F: '/var/x',
      G: 5,
      H: 'def',
    });
    expect(loadEnv(schema, { C: 'mysql://h/db', D: '15m', F: '/' }).D).toBe(900_000);
    expect(loadEnv(schema, { C: 'mysql://h/db', D: '250' }).D).toBe(250);
  });

  it('names every bad variable and what it expects', () => {
    let err: ConfigError | undefined;
    try {
      loadEnv(schema, { A: '99999', B: 'maybe', D: 'soon', E: 'z', F: 'rel', G: '9', C: 'http://x' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.message;
    expect(text).toContain('A="99999" is invalid: expected a number from 1 to 65535');
    expect(text).toContain('B="maybe" is invalid: expected true or false');
    expect(text).toContain('C="http://x" is invalid: expected a mysql: URL');
    expect(text).toContain('D="soon" is invalid');
    expect(text).toContain('E="z" is invalid: expected one of x, y');
    expect(text).toContain('F="rel" is invalid: expected an absolute path');
    expect(text).toContain('G="9" is invalid');
    expect(err!.problems).toHaveLength(7);
  });

  it('requires variables without default', () => {
    expect(() => loadEnv(schema, {})).toThrow(/C is required: db/);
  });

  it('rejects non-numbers and non-URLs', () => {
    expect(() => loadEnv({ P: port('p') }, { P: '12a' })).toThrow(/whole number/);
    expect(() => loadEnv({ U: url('u', ['redis:']) }, { U: 'not a url' })).toThrow(/expected a URL/);
    expect(() => loadEnv({ F: absPath('f') }, { F: '/a\nb' })).toThrow(/newline/);
  });
});

describe('settings', () => {
  it('takes Redis and database URLs with a user and password, and never shows the password or a secret in an error', () => {
    const s = loadGatewaySettings({ DATABASE_URL: 'mysql://sendense:dbPw1@127.0.0.1:3306/sendense', REDIS_URL: 'redis://sendense:redisPw1@127.0.0.1:6379' });
    expect(s.REDIS_URL).toBe('redis://sendense:redisPw1@127.0.0.1:6379');
    expect(s.DATABASE_URL).toBe('mysql://sendense:dbPw1@127.0.0.1:3306/sendense');
    let text = '';
    try {
      loadGatewaySettings({ DATABASE_URL: 'http://sendense:dbPw1@127.0.0.1/x', REDIS_URL: 'http://sendense:redisPw1@127.0.0.1:6379' });
    } catch (e) {
      text = (e as Error).message;
    }
    expect(text).toContain('REDIS_URL="http://sendense:***@127.0.0.1:6379" is invalid: expected a redis: or rediss: URL');
    expect(text).toContain('DATABASE_URL="http://sendense:***@127.0.0.1/x" is invalid');
    expect(text).not.toMatch(/redisPw1|dbPw1/);
    expect(shownValue('SENDENSE_SECRET_KEY', 'abc')).toBe('(hidden)');
  });

  it('loads the gateway defaults', () => {
    const s = loadGatewaySettings({});
    expect(s.GATEWAY_PORT).toBe(8080);
    expect(s.DATABASE_URL).toMatch(/^mysql:/);
    expect(tcpAddress(s.NBD_EXPORTER_URL)).toEqual({ host: '127.0.0.1', port: 8091 });
  });

  it('refuses a bad GATEWAY_PORT by name', () => {
    expect(() => loadGatewaySettings({ GATEWAY_PORT: 'http' })).toThrow(/GATEWAY_PORT="http"/);
    expect(loadRestoreSettings({ RESTORE_IDLE_TIMEOUT: '2s' }).RESTORE_IDLE_TIMEOUT).toBe(2000);
  });

  it('every variable is documented in the README with its default', () => {
    const readme = readFileSync(join(__dirname, '../../../README.md'), 'utf8');
    for (const group of Object.values(allEnvGroups)) {
      for (const [name, spec] of Object.entries(group)) {
        const row = readme.split('\n').find((l) => l.startsWith(`| \`${name}\``));
        expect({ name, documented: Boolean(row) }).toEqual({ name, documented: true });
        if (spec.default && name !== 'NODE_NAME') expect({ name, row }).toEqual({ name, row: expect.stringContaining(`\`${spec.default}\``) });
      }
    }
  });
});
