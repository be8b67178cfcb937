/// <reference lib="dom" />
// (page functions below run in the browser)
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ApiKeyRepository } from '@sendense/db';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { ROOT, startSystem, type System } from './support/system';

/**
 * The web console in Debian's Chromium (playwright-core, no browser
 * download) against the real services and the VMware stand-in: log in, back
 * up from the page and watch the progress, see the chain grow, mount a
 * restore point, browse to a file and download it, unmount; a viewer key
 * gets no backup button. Screenshots go to tests/artifacts/ (git-ignored).
 */

const VM = 'console-vm';
const ARTIFACTS = join(ROOT, 'tests/artifacts');
const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('web console in a browser', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  let ctx: BrowserContext;
  let page: Page;
  let viewerKey: string;
  let deviceKey: number;
  const payload = randomBytes(300 * 1024 + 17);
  const outside: string[] = [];

  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist/apps/console/index.html'))) throw new Error('dist/apps/console is missing: run "npx nx build console" (npm test builds it)');
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh does)`);
    work = await mkdtemp(join(tmpdir(), 'sendense-console-e2e-'));
    await mkdir(ARTIFACTS, { recursive: true });
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [
        {
          name: VM,
          disks: [{ sizeMiB: 64, content: { type: 'filesystem', filesystem: 'ext4', partitionTable: 'gpt', files: { '/etc/hostname': 'console\n' }, randomFiles: { '/data/fill.bin': 4 * 1024 * 1024 }, seed: 21 } }],
        },
      ],
    });
    sys = await startSystem();
    const vc = await sys.call<{ id: string }>('POST', '/api/v1/vcenters', {
      name: 'standin',
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      insecure: true,
      disk_reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl },
    });
    expect(vc.status).toBe(201);
    expect((await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: [VM] })).status).toBe(200);
    expect((await sys.call('POST', '/api/v1/repositories', { name: 'local', type: 'local', path: sys.repoDir })).status).toBe(201);
    const vms = await sys.call<{ vm_name: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
    deviceKey = vms.body.find((v) => v.vm_name === VM)!.disks[0]!.device_key;
    // The guest holds this file; the download must give back exactly these bytes.
    await standIn.harness!.writeFile(VM, deviceKey, '/data/payload.bin', payload);
    viewerKey = (await new ApiKeyRepository(sys.db.prisma).create('console viewer', 'viewer')).key;

    ctx = await chromium.launchPersistentContext(join(work, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 800 },
      acceptDownloads: true,
    });
    // Everything the page needs is bundled: any request leaving the gateway is a failure.
    await ctx.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(sys.api) || url.startsWith('blob:') || url.startsWith('data:')) return route.continue();
      outside.push(url);
      return route.abort();
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
  }, 300_000);

  afterAll(async () => {
    await ctx?.close().catch(() => undefined);
    await sys?.stop();
    await standIn?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  async function login(p: Page, key: string) {
    await p.goto(`${sys.api}/`);
    await p.fill('#apikey', key);
    await p.click('button[type=submit]');
  }

  it('logs in with an API key kept in session storage (never in the URL); a bad key says why', async () => {
    await login(page, 'sdk_not_a_key');
    await page.getByRole('alert').filter({ hasText: /invalid or revoked/ }).waitFor();
    await page.fill('#apikey', sys.adminKey);
    await page.click('button[type=submit]');
    await page.getByTestId('role').filter({ hasText: 'admin' }).waitFor();
    expect(page.url()).not.toContain(sys.adminKey);
    expect(await page.evaluate(() => sessionStorage.getItem('sendense.apiKey'))).toBe(sys.adminKey);
    await page.getByRole('link', { name: 'Settings' }).waitFor();
    // A reload keeps the session (same tab).
    await page.reload();
    await page.getByTestId('role').filter({ hasText: 'admin' }).waitFor();
  }, 60_000);

  const runs: string[] = [];
  async function backupFromPage(type: 'full' | 'incremental', points: number) {
    await page.selectOption('#backup-type', type);
    await page.getByTestId('backup-now').click();
    // The new run's live progress (server-sent events), followed until the job ends.
    const handle = await page.waitForFunction((seen) => {
      const el = document.querySelector('[data-testid=live-progress]');
      const run = el?.getAttribute('data-run');
      return run && !seen.includes(run) ? run : null;
    }, runs);
    const runId = (await handle.jsonValue()) as string;
    runs.push(runId);
    const live = page.locator(`[data-testid=live-progress][data-run="${runId}"]`);
    try {
      await live.and(page.locator('[data-status=completed]')).waitFor({ timeout: 240_000 });
    } catch (err) {
      const job = await sys.call('GET', `/api/v1/jobs/${runId}`);
      throw new Error(
        `${(err as Error).message}\npage shows: ${await live.innerText().catch(() => '?')}\njob: ${JSON.stringify(job.body).slice(0, 2000)}\nworker: ${sys.logs.get('backup-worker')?.slice(-15).join('\n')}`,
      );
    }
    expect(await live.getAttribute('data-phase')).toBe('done');
    expect(await live.getByRole('progressbar', { name: 'Overall progress' }).getAttribute('aria-valuenow')).toBe('100');
    const job = await sys.call<{ status: string; backups: { backup_type: string }[] }>('GET', `/api/v1/jobs/${runId}`);
    expect(job.body.status).toBe('completed');
    await page.locator('[data-testid=chain-disk-0] [data-testid=restore-point]').nth(points - 1).waitFor();
    const types = await page.locator('[data-testid=chain-disk-0] [data-testid=restore-point]').evaluateAll((els) => els.map((e) => e.getAttribute('data-type')));
    expect(types).toHaveLength(points);
    expect(types[points - 1]).toBe(type);
  }

  it('starts a full and then an incremental backup from the VM page, follows the progress to done, and the chain grows', async () => {
    await page.getByRole('link', { name: 'VMs' }).click();
    await page.getByRole('link', { name: VM }).click();
    await page.getByText('No restore point yet.').waitFor();
    await backupFromPage('full', 1);
    await standIn.harness!.writeFile(VM, deviceKey, '/data/later.txt', 'written after the full\n');
    await backupFromPage('incremental', 2);
    await page.locator('#chains').screenshot({ path: join(ARTIFACTS, 'console-chain-timeline.png') });
    await page.screenshot({ path: join(ARTIFACTS, 'console-vm-page.png'), fullPage: true });
  }, 600_000);

  it('mounts the newest restore point, browses to a file and downloads it byte for byte, then unmounts', async () => {
    await page.locator('[data-testid=chain-disk-0] [data-testid=restore-point]').last().click();
    await page.getByRole('link', { name: 'Restore files…' }).click();
    await page.waitForURL(/\/restore\?backup=/);
    // The chosen restore point is preselected.
    await page.waitForFunction(() => {
      const s = document.querySelector<HTMLSelectElement>('#restore-point');
      return !!s && s.value !== '' && (s.selectedOptions[0]?.textContent ?? '').includes('incremental');
    });
    await page.getByTestId('mount').click();
    await page.waitForURL(/\/restore\/[0-9a-f-]{36}$/, { timeout: 120_000 });
    const table = page.getByTestId('file-table');
    // The root lists the partitions; the ext4 one is a directory to open.
    await table.locator('tr[data-type=dir]').first().waitFor();
    await table.locator('tr[data-type=dir] button.link').first().click();
    await table.locator('tr[data-name=data]').waitFor();
    await table.locator('tr[data-name=data] button.link').click();
    await table.locator('tr[data-name="payload.bin"]').waitFor();
    // Sorting by size puts the 4 MiB fill after the payload, descending before it.
    await page.getByRole('button', { name: 'Size' }).click();
    await page.getByRole('button', { name: /Size/ }).click();
    const names = await table.locator('tbody tr[data-name]').evaluateAll((els) => els.map((e) => e.getAttribute('data-name')));
    expect(names.indexOf('fill.bin')).toBeLessThan(names.indexOf('payload.bin'));
    await page.screenshot({ path: join(ARTIFACTS, 'console-file-browser.png'), fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download payload.bin' }).click()]);
    expect(download.suggestedFilename()).toBe('payload.bin');
    const got = await readFile((await download.path())!);
    expect(got.length).toBe(payload.length);
    expect(got.equals(payload)).toBe(true);

    await page.getByTestId('unmount').click();
    await page.waitForURL(/\/restore$/);
    await page.getByText('Nothing is mounted.').waitFor();
    const mounts = await sys.call<unknown[]>('GET', '/api/v1/restore/mounts');
    expect(mounts.body).toEqual([]);
  }, 300_000);

  it('a viewer key sees the chain but no backup button and no settings', async () => {
    const viewer = await ctx.newPage(); // a new tab: its own session storage
    await login(viewer, viewerKey);
    await viewer.getByTestId('role').filter({ hasText: 'viewer' }).waitFor();
    await viewer.getByRole('link', { name: 'VMs' }).click();
    await viewer.getByRole('link', { name: VM }).click();
    await viewer.locator('[data-testid=chain-disk-0] [data-testid=restore-point]').nth(1).waitFor();
    expect(await viewer.getByTestId('backup-now').count()).toBe(0);
    expect(await viewer.getByRole('link', { name: 'Settings' }).count()).toBe(0);
    await viewer.locator('[data-testid=chain-disk-0] [data-testid=restore-point]').first().click();
    expect(await viewer.getByRole('button', { name: /Delete|Verify|Consolidate/ }).count()).toBe(0);
    // A narrow window still shows the page without sideways scrolling of the whole page.
    await viewer.setViewportSize({ width: 420, height: 800 });
    expect(await viewer.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(420);
    await viewer.screenshot({ path: join(ARTIFACTS, 'console-narrow-viewer.png'), fullPage: true });
    await viewer.close();
  }, 120_000);

  it('made no request outside the gateway', () => {
    expect(outside).toEqual([]);
  });
});
