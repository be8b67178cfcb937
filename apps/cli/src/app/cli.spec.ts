import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { buildProgram, runCli } from './program';
import { bashCompletion, commandTree, zshCompletion } from './completion';
import { humanBytes, humanDuration, localTime, modeString, octalMode, parseMode, table, truncate } from './format';
import { configPath, readConfigFile, resolveSettings, writeConfigFile } from './settings';
import { CliError, EXIT } from './errors';
import { progressLine } from './progress';
import { guestPath } from './extract';
import type { Io } from './context';

function fakeIo(env: Record<string, string | undefined> = {}): Io & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c: Buffer) => (o += c.toString()));
  stderr.on('data', (c: Buffer) => (e += c.toString()));
  return { stdout, stderr, env, out: () => o, err: () => e };
}

describe('format', () => {
  it('human sizes, durations, modes', () => {
    expect(humanBytes(0)).toBe('0 B');
    expect(humanBytes(1023)).toBe('1023 B');
    expect(humanBytes(1536)).toBe('1.5 KiB');
    expect(humanBytes(1.2 * 1024 ** 3)).toBe('1.2 GiB');
    expect(humanBytes(300 * 1024 ** 2)).toBe('300 MiB');
    expect(humanBytes(null)).toBe('-');
    expect(humanDuration(42)).toBe('42s');
    expect(humanDuration(185)).toBe('3m05s');
    expect(humanDuration(3720)).toBe('1h02m');
    expect(octalMode(420)).toBe('0644');
    expect(octalMode('755')).toBe('0755');
    expect(parseMode('0644', 0)).toBe(0o644);
    expect(parseMode(493, 0)).toBe(0o755);
    expect(parseMode('rwx', 0o600)).toBe(0o600);
    expect(modeString('dir', 0o755)).toBe('drwxr-xr-x');
    expect(modeString('file', 0o640)).toBe('-rw-r-----');
    expect(truncate('abcdef', 4)).toBe('abc…');
  });

  it('local time is the local rendering of the instant', () => {
    const d = new Date(2026, 11, 1, 22, 5, 7);
    expect(localTime(d.toISOString())).toBe('2026-12-01 22:05:07');
    expect(localTime(null)).toBe('-');
  });

  it('tables fit the width by cutting the widest column, never below its minimum', () => {
    const rows = [['a'.repeat(40), 'x'.repeat(60), '12 MiB']];
    const t = table([{ header: 'ID', min: 40 }, { header: 'NAME' }, { header: 'SIZE', right: true }], rows, 80);
    for (const line of t.split('\n')) expect([...line].length).toBeLessThanOrEqual(80);
    expect(t).toContain('a'.repeat(40));
    expect(t).toContain('…');
    expect(t.split('\n')[0]).toMatch(/^ID\s+NAME\s+SIZE$/);
  });
});

describe('settings', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-cli-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('flags beat the environment, which beats the config file, which beats the default', () => {
    const cfg = () => ({ api_url: 'http://cfg:1', api_key: 'cfg-key' });
    expect(
      resolveSettings({ apiUrl: 'http://flag:1', apiKey: 'flag-key' }, { SENDENSE_API_URL: 'http://env:1', SENDENSE_API_KEY: 'env-key' }, cfg),
    ).toMatchObject({
      apiUrl: 'http://flag:1',
      apiKey: 'flag-key',
      source: { apiUrl: 'flag', apiKey: 'flag' },
    });
    expect(resolveSettings({}, { SENDENSE_API_URL: 'http://env:1/', SENDENSE_API_KEY: 'env-key' }, cfg)).toMatchObject({
      apiUrl: 'http://env:1',
      apiKey: 'env-key',
    });
    expect(resolveSettings({}, { SENDENSE_API_KEY: 'env-key' }, cfg)).toMatchObject({
      apiUrl: 'http://cfg:1',
      apiKey: 'env-key',
      source: { apiUrl: 'config', apiKey: 'env' },
    });
    expect(resolveSettings({}, {}, () => ({}))).toMatchObject({ apiUrl: 'http://127.0.0.1:8080', apiKey: '', source: { apiUrl: 'default', apiKey: 'none' } });
    // The config file is not even read when flags and env give everything.
    expect(
      resolveSettings({ apiUrl: 'http://a:1' }, { SENDENSE_API_KEY: 'k' }, () => {
        throw new Error('read');
      }).apiKey,
    ).toBe('k');
    expect(() => resolveSettings({ apiUrl: 'ftp://x' }, {}, () => ({}))).toThrow(/must be http/);
  });

  it('writes the config file 0600 and refuses one that others can read', () => {
    const path = configPath({ XDG_CONFIG_HOME: dir });
    expect(path).toBe(join(dir, 'sendense', 'config.json'));
    writeConfigFile(path, { api_url: 'http://gw:8080', api_key: 'sdk_x' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readConfigFile(path)).toEqual({ api_url: 'http://gw:8080', api_key: 'sdk_x' });
    chmodSync(path, 0o644);
    let err: unknown;
    try {
      readConfigFile(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).code).toBe(EXIT.denied);
    expect((err as CliError).message).toMatch(/readable by others \(mode 0644\)/);
    expect((err as CliError).hint).toContain(`chmod 600 ${path}`);
    expect(readConfigFile(join(dir, 'none.json'))).toEqual({});
    writeFileSync(join(dir, 'bad.json'), '{', { mode: 0o600 });
    expect(() => readConfigFile(join(dir, 'bad.json'))).toThrow(/not valid JSON/);
  });

  it('a command refuses a world-readable config file with exit 4', async () => {
    const path = configPath({ XDG_CONFIG_HOME: dir });
    writeConfigFile(path, { api_key: 'sdk_x' });
    chmodSync(path, 0o604);
    const io = fakeIo({ XDG_CONFIG_HOME: dir });
    expect(await runCli(['node', 'sendense-ctl', 'vm', 'list'], io)).toBe(EXIT.denied);
    expect(io.err()).toMatch(/readable by others/);
    expect(io.out()).toBe('');
  });

  it('login writes the config file (without checking, --no-verify) and commands use it', async () => {
    const io = fakeIo({ XDG_CONFIG_HOME: dir });
    expect(await runCli(['node', 'sendense-ctl', 'login', '--api-url', 'http://127.0.0.1:1', '--api-key', 'sdk_test', '--no-verify', '--json'], io)).toBe(0);
    const path = join(dir, 'sendense', 'config.json');
    expect(JSON.parse(io.out())).toMatchObject({ config: path, api_url: 'http://127.0.0.1:1', verified: false });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ api_url: 'http://127.0.0.1:1', api_key: 'sdk_test' });
    const io2 = fakeIo({ XDG_CONFIG_HOME: dir });
    expect(await runCli(['node', 'sendense-ctl', 'config', '--json'], io2)).toBe(0);
    expect(JSON.parse(io2.out())).toMatchObject({ api_url: 'http://127.0.0.1:1', api_url_from: 'config', api_key_from: 'config' });
  });
});

describe('exit codes', () => {
  it('usage errors exit 2, help exits 0 and shows an example and the exit codes', async () => {
    const io = fakeIo();
    expect(await runCli(['node', 'sendense-ctl', 'backup', 'start', '--type', 'full'], io)).toBe(EXIT.usage);
    expect(io.err()).toMatch(/required option '--vm/);
    const io2 = fakeIo();
    expect(await runCli(['node', 'sendense-ctl', 'backup', 'start', '--vm', 'x', '--type', 'weekly'], io2)).toBe(EXIT.usage);
    const io3 = fakeIo();
    expect(await runCli(['node', 'sendense-ctl', '--help'], io3)).toBe(0);
    expect(io3.out()).toMatch(/Exit codes:[\s\S]*6 {2}the job ran and failed/);
    const io4 = fakeIo();
    expect(await runCli(['node', 'sendense-ctl', 'backup', 'extract', '--help'], io4)).toBe(0);
    expect(io4.out()).toMatch(/Examples:\n {2}\$ sendense-ctl backup extract --backup-id ID --file/);
  });

  it('an unreachable gateway exits 5 with what to do next', async () => {
    const io = fakeIo({ SENDENSE_API_URL: 'http://127.0.0.1:1', SENDENSE_API_KEY: 'sdk_x', XDG_CONFIG_HOME: '/nonexistent' });
    expect(await runCli(['node', 'sendense-ctl', 'vm', 'list'], io)).toBe(EXIT.unreachable);
    expect(io.err()).toMatch(/cannot reach the API gateway at http:\/\/127.0.0.1:1/);
    expect(io.err()).toMatch(/next: check that the gateway runs/);
  });

  it('no key at all exits 4', async () => {
    const io = fakeIo({ XDG_CONFIG_HOME: '/nonexistent' });
    expect(await runCli(['node', 'sendense-ctl', 'vm', 'list'], io)).toBe(EXIT.denied);
    expect(io.err()).toMatch(/no API key[\s\S]*sendense-ctl login/);
  });
});

describe('completion', () => {
  it('walks the command tree', () => {
    const tree = commandTree(buildProgram(fakeIo()));
    const backup = tree.find((n) => n.path.join(' ') === 'backup');
    expect(backup?.subcommands).toEqual(
      expect.arrayContaining(['start', 'list', 'show', 'chain', 'delete', 'verify', 'consolidate', 'mount', 'ls', 'extract', 'unmount']),
    );
    const start = tree.find((n) => n.path.join(' ') === 'backup start');
    expect(start?.options).toEqual(expect.arrayContaining(['--vm', '--type', '--wait', '--json', '--api-url']));
    expect(tree.find((n) => n.path.join(' ') === 'job')?.subcommands).toEqual(['list', 'show', 'watch', 'cancel']);
  });

  it('bash and zsh scripts name every command and are valid shell', async () => {
    const program = buildProgram(fakeIo());
    const bash = bashCompletion(program);
    expect(bash).toContain("'backup extract') words='");
    expect(bash).toContain('complete -o default -F _sendense_ctl sendense-ctl');
    const zsh = zshCompletion(program);
    expect(zsh.startsWith('#compdef sendense-ctl')).toBe(true);
    expect(zsh).toContain("'retention apply') cands=(");
    const { run } = await import('@sendense/process');
    const dir = mkdtempSync(join(tmpdir(), 'sendense-comp-'));
    try {
      writeFileSync(join(dir, 'c.bash'), bash);
      // Source it and ask for completions of "sendense-ctl backup ex".
      const r = await run('bash', [
        '-c',
        `source ${join(dir, 'c.bash')}; COMP_WORDS=(sendense-ctl backup ex); COMP_CWORD=2; _sendense_ctl; echo "\${COMPREPLY[@]}"`,
      ]);
      expect(r.stdout.trim()).toBe('extract');
      const r2 = await run('bash', [
        '-c',
        `source ${join(dir, 'c.bash')}; COMP_WORDS=(sendense-ctl backup start --w); COMP_CWORD=3; _sendense_ctl; echo "\${COMPREPLY[@]}"`,
      ]);
      expect(r2.stdout.trim()).toBe('--wait');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('pure parts of progress and extract', () => {
  it('a plain progress line has no control characters', () => {
    const l = progressLine('r1', {
      run_id: 'r1',
      status: 'running',
      error: null,
      progress: { phase: 'copying', bytesDone: 512 * 1024 ** 2, bytesTotal: 1024 ** 3, rateBytesPerSec: 64 * 1024 ** 2 },
    });
    expect(l).toBe('job r1: running  copying  50% 512 MiB/1.0 GiB  64.0 MiB/s  ETA 8s');
    // eslint-disable-next-line no-control-regex
    expect(l).not.toMatch(/[\u0000-\u001f\u007f]/);
  });
  it('guest paths are normalised and ".." refused', () => {
    expect(guestPath('/etc//hosts')).toBe('etc/hosts');
    expect(guestPath('/')).toBe('');
    expect(() => guestPath('/etc/../../x')).toThrow(/may not contain/);
  });
});
