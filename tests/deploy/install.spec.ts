import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allEnvGroups } from '@sendense/config';
import { run } from '@sendense/process';

/**
 * scripts/install.sh into a throwaway root (systemd cannot run here): the
 * tree it lays out (user, owners, modes, enabled units, env file) and
 * `systemd-analyze verify` / `security --offline` on the units it installs.
 */
const ROOT = join(__dirname, '..', '..');
const INSTALL = join(ROOT, 'scripts', 'install.sh');
const APPS = ['nbd-exporter', 'restore-service', 'capture-agent', 'backup-worker', 'api-gateway'];
const UNITS = [...APPS.map((a) => `sendense-${a}.service`), 'sendense.target'];

let work: string;
let dest: string;
let built: string;
let firstRun: { stdout: string; stderr: string };

/** A built checkout as install.sh expects one: the apps' bundles and node_modules. */
function makeBuiltTree(dir: string): void {
  for (const app of APPS) {
    mkdirSync(join(dir, 'dist/apps', app), { recursive: true });
    writeFileSync(join(dir, 'dist/apps', app, 'main.js'), `// ${app}\n`);
  }
  mkdirSync(join(dir, 'node_modules/some-dep'), { recursive: true });
  writeFileSync(join(dir, 'node_modules/some-dep/index.js'), '');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin/sendense-ctl'), '#!/bin/sh\n');
  chmodSync(join(dir, 'bin/sendense-ctl'), 0o775);
  mkdirSync(join(dir, '.sendense'));
  writeFileSync(join(dir, '.sendense/admin.key'), 'not to be installed');
}

function passwdEntry(name: string): string[] {
  const entry = readFileSync(join(dest, 'etc/passwd'), 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[0] === name);
  if (!entry) throw new Error(`no user ${name} in ${dest}/etc/passwd`);
  return entry;
}

const mode = (p: string) => statSync(join(dest, p)).mode & 0o7777;
const owner = (p: string) => {
  const s = statSync(join(dest, p));
  return [s.uid, s.gid];
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sendense-install-'));
  dest = join(work, 'root');
  built = join(work, 'built');
  makeBuiltTree(built);
  firstRun = await run('bash', [INSTALL, '--root', dest, '--from', built, '--node-name', 'node-a'], { timeoutMs: 120_000 });
}, 130_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

const asRoot = process.getuid?.() === 0 ? it : it.skip;

describe('scripts/install.sh --root', () => {
  it('creates the sendense system user without a login shell', () => {
    const u = passwdEntry('sendense');
    expect(Number(u[2])).toBeLessThan(1000);
    expect(u[6]).toBe('/usr/sbin/nologin');
  });

  it('lays out code, state and settings with the least access', () => {
    const uid = Number(passwdEntry('sendense')[2]);
    const gid = Number(passwdEntry('sendense')[3]);
    // Code: root-owned, nobody else may change it.
    expect(owner('opt/sendense/dist/apps/api-gateway/main.js')).toEqual([0, 0]);
    expect(mode('opt/sendense/dist/apps/api-gateway/main.js') & 0o022).toBe(0);
    expect(mode('opt/sendense/bin/sendense-ctl')).toBe(0o755);
    expect(readFileSync(join(dest, 'opt/sendense/node_modules/some-dep/index.js'), 'utf8')).toBe('');
    expect(() => statSync(join(dest, 'opt/sendense/.sendense'))).toThrow();
    expect(readlinkSync(join(dest, 'usr/local/bin/sendense-ctl'))).toBe('/opt/sendense/bin/sendense-ctl');
    // State: the unprivileged services write repositories; the privileged ones keep theirs.
    for (const d of ['var/lib/sendense', 'var/lib/sendense/backups']) {
      expect([d, ...owner(d), mode(d)]).toEqual([d, uid, gid, 0o750]);
    }
    for (const d of ['var/lib/sendense/restore', 'mnt/sendense']) {
      expect([d, ...owner(d), mode(d)]).toEqual([d, 0, 0, 0o700]);
    }
    // The exporter's: group sendense may pass (not list) to reach the Unix-socket targets (NBD_SOCKET_GROUP).
    expect(['var/lib/sendense/nbd', ...owner('var/lib/sendense/nbd'), mode('var/lib/sendense/nbd')]).toEqual(['var/lib/sendense/nbd', 0, gid, 0o710]);
    // Settings: read by systemd as root only.
    expect([...owner('etc/sendense/sendense.env'), mode('etc/sendense/sendense.env')]).toEqual([0, 0, 0o600]);
    expect([...owner('etc/sendense'), mode('etc/sendense')]).toEqual([0, gid, 0o750]);
  });

  it('writes an env file naming every setting, with a generated secret', () => {
    const env = readFileSync(join(dest, 'etc/sendense/sendense.env'), 'utf8');
    for (const vars of Object.values(allEnvGroups)) {
      for (const name of Object.keys(vars)) expect(env).toMatch(new RegExp(`^#?${name}=`, 'm'));
    }
    expect(env).toMatch(/^NODE_NAME=node-a$/m);
    expect(env).toMatch(/^SENDENSE_SECRET_KEY=[A-Za-z0-9]{40,}$/m);
    expect(env).toMatch(/^DATABASE_URL=mysql:\/\/sendense:[A-Za-z0-9]{30,}@127\.0\.0\.1:3306\/sendense$/m);
  });

  it('enables the services under sendense.target, and the target at boot', () => {
    expect(readlinkSync(join(dest, 'etc/systemd/system/multi-user.target.wants/sendense.target'))).toBe('/etc/systemd/system/sendense.target');
    const wants = readdirSync(join(dest, 'etc/systemd/system/sendense.target.wants')).sort();
    expect(wants).toEqual(APPS.map((a) => `sendense-${a}.service`).sort());
  });

  it('installs units that systemd-analyze verifies without a warning', async () => {
    const dir = join(dest, 'etc/systemd/system');
    const r = await run('systemd-analyze', ['verify', '--man=no', ...UNITS.map((u) => join(dir, u))], { okExitCodes: [0, 1] });
    expect({ exit: r.exitCode, stderr: r.stderr.trim() }).toEqual({ exit: 0, stderr: '' });
  });

  it('runs only nbd-exporter and restore-service as root, hardened', async () => {
    const dir = join(dest, 'etc/systemd/system');
    for (const app of APPS) {
      const unit = readFileSync(join(dir, `sendense-${app}.service`), 'utf8');
      const user = /^User=(.*)$/m.exec(unit)?.[1];
      expect([app, user]).toEqual([app, ['nbd-exporter', 'restore-service'].includes(app) ? 'root' : 'sendense']);
      for (const line of [
        'NoNewPrivileges=yes',
        'ProtectSystem=strict',
        'ProtectHome=yes',
        'PrivateTmp=yes',
        'Restart=on-failure',
        'EnvironmentFile=/etc/sendense/sendense.env',
      ]) {
        expect([app, unit.includes(`\n${line}\n`)]).toEqual([app, true]);
      }
      expect(unit).toContain(`ExecStart=/usr/bin/node /opt/sendense/dist/apps/${app}/main.js`);
      // systemd's own score (0 = locked down, 10 = unprotected).
      const s = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', join(dir, `sendense-${app}.service`)]);
      const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(s.stdout)?.[1]);
      expect([app, score]).toEqual([app, expect.any(Number)]);
      expect([app, score <= (user === 'root' ? 4.5 : 2.0)]).toEqual([app, true]);
    }
  });

  it('keeps the env file and its secrets when run again (upgrade)', async () => {
    const before = readFileSync(join(dest, 'etc/sendense/sendense.env'), 'utf8');
    writeFileSync(join(built, 'dist/apps/api-gateway/main.js'), '// v2\n');
    const r = await run('bash', [INSTALL, '--root', dest, '--from', built], { timeoutMs: 120_000 });
    expect(r.stderr).toContain('keeping');
    expect(readFileSync(join(dest, 'etc/sendense/sendense.env'), 'utf8')).toBe(before);
    expect(readFileSync(join(dest, 'opt/sendense/dist/apps/api-gateway/main.js'), 'utf8')).toBe('// v2\n');
    expect(firstRun.stderr).toContain('installed into');
  }, 130_000);

  it('refuses an unbuilt checkout, saying what to run', async () => {
    const empty = join(work, 'unbuilt');
    mkdirSync(empty);
    const r = await run('bash', [INSTALL, '--root', join(work, 'other'), '--from', empty], { okExitCodes: [1] });
    expect(r.stderr).toMatch(/is not built .*nx run-many -t build/);
  });

  asRoot('refuses politely when not run as root', async () => {
    const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', INSTALL, '--root', join(work, 'nobody')], { okExitCodes: [1] });
    expect(r.stderr).toContain('please run as root');
    expect(() => statSync(join(work, 'nobody'))).toThrow();
  });
});
