/// <reference lib="dom" />
// (page functions below run in the browser)
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ApiKeyRepository } from '@sendense/db';
import { run } from '@sendense/process';
import { startStandIn, VSphereClient, type StandIn } from '@sendense/vsphere';
import { ROOT, startSystem, type System } from './support/system';

/**
 * The web console in Debian's Chromium (playwright-core, no browser
 * download) against the real services and the VMware stand-in: log in, back
 * up from the page and watch the progress, see the chain grow, mount a
 * restore point, browse to a file and download it, unmount; start an
 * instant-access export and read its URI with qemu-img, download the disk
 * image, write the disk back (refused while the VM runs, in the API's words;
 * a quick rollback once it is off); a viewer key gets no backup, export or
 * restore buttons. Screenshots go to tests/artifacts/ (git-ignored).
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
    if (!existsSync(join(ROOT, 'dist/apps/console/index.html')))
      throw new Error('dist/apps/console is missing: run "npx nx build console" (npm test builds it)');
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh does)`);
    work = await mkdtemp(join(tmpdir(), 'sendense-console-e2e-'));
    await mkdir(ARTIFACTS, { recursive: true });
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [
        {
          name: VM,
          disks: [
            {
              sizeMiB: 64,
              content: {
                type: 'filesystem',
                filesystem: 'ext4',
                partitionTable: 'gpt',
                files: { '/etc/hostname': 'console\n' },
                randomFiles: { '/data/fill.bin': 4 * 1024 * 1024 },
                seed: 21,
              },
            },
          ],
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
    await page
      .getByRole('alert')
      .filter({ hasText: /invalid or revoked/ })
      .waitFor();
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
    await page
      .locator('[data-testid=chain-disk-0] [data-testid=restore-point]')
      .nth(points - 1)
      .waitFor();
    const types = await page
      .locator('[data-testid=chain-disk-0] [data-testid=restore-point]')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-type')));
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

  // The newest restore point as the chain reads it: the reference the export, the image and the write-back are compared with.
  let pointId = '';
  let pointRaw = '';
  it('starts an instant-access export from the disk-restore page, shows its URI and size; any NBD client reads the restore point there; it is listed and ended; a writable one takes writes that leave the restore point unchanged', async () => {
    await page.getByRole('link', { name: 'VMs' }).click();
    await page.getByRole('link', { name: VM }).click();
    await page.locator('[data-testid=chain-disk-0] [data-testid=restore-point]').last().click();
    await page.getByRole('link', { name: 'Restore the disk…' }).click();
    await page.waitForURL(/\/disk-restore\?backup=/);
    pointId = new URL(page.url()).searchParams.get('backup')!;
    await page.getByTestId('disk-point-chosen').filter({ hasText: 'incremental' }).waitFor();
    const point = await sys.call<{ repository_path: string; virtual_size_bytes: number }>('GET', `/api/v1/backup/${pointId}`);
    pointRaw = join(work, 'point.raw');
    await run('qemu-img', ['convert', '-U', '-O', 'raw', join(sys.repoDir, point.body.repository_path), pointRaw]);

    await page.getByTestId('start-export').click();
    const uriCell = page.getByTestId('export-uri');
    await uriCell.waitFor({ timeout: 120_000 });
    const uri = (await uriCell.innerText()).trim();
    expect(uri).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/backup-/);
    expect(Number(await page.getByTestId('export-size').getAttribute('data-bytes'))).toBe(point.body.virtual_size_bytes);
    // The URI as the page shows it, read by a real NBD client.
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', pointRaw, uri]);
    const name = (await page.getByTestId('export-created').getAttribute('data-name'))!;
    const row = page.locator(`[data-testid=export-table] tr[data-name="${name}"]`);
    await row.waitFor();
    expect(await row.innerText()).toContain(uri);
    await page.screenshot({ path: join(ARTIFACTS, 'console-disk-export.png'), fullPage: true });
    await page.getByRole('button', { name: `End export ${name}` }).click();
    await page.getByTestId('no-exports').waitFor();
    expect((await sys.call<unknown[]>('GET', '/api/v1/restore/export')).body).toEqual([]);

    // Writable: the box reaches the API, and a client's writes land in the overlay, not in the restore point.
    await page.getByTestId('export-writable').check();
    await page.getByTestId('start-export').click();
    await page
      .getByTestId('export-created')
      .and(page.locator(`:not([data-name="${name}"])`))
      .waitFor({ timeout: 120_000 });
    const wUri = (await page.getByTestId('export-uri').innerText()).trim();
    const listed = await sys.call<{ uri: string; writable: boolean }[]>('GET', '/api/v1/restore/export');
    expect(listed.body.map((e) => [e.uri, e.writable])).toEqual([[wUri, true]]);
    const junk = join(work, 'junk.raw');
    await writeFile(junk, randomBytes(1024 * 1024));
    await run('nbdcopy', [junk, wUri]);
    await expect(run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', pointRaw, wUri])).rejects.toThrow();
    await page.getByRole('button', { name: /^End export / }).click();
    await page.getByTestId('no-exports').waitFor();
    await run('qemu-img', ['compare', '-U', '-f', 'raw', '-F', 'qcow2', pointRaw, join(sys.repoDir, point.body.repository_path)]);
  }, 300_000);

  it('downloads the disk image as qcow2 from the page: a self-contained image that reads as the restore point', async () => {
    await page.selectOption('#image-format', 'qcow2');
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 180_000 }), page.getByTestId('download-image').click()]);
    expect(download.suggestedFilename()).toBe(`${pointId}.qcow2`);
    const file = join(work, 'image.qcow2');
    await download.saveAs(file);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', file])).stdout) as { format: string; 'backing-filename'?: string };
    expect(info.format).toBe('qcow2');
    expect(info['backing-filename']).toBeUndefined();
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', pointRaw, file]);
    await page.getByText(/Downloaded .*\.qcow2/).waitFor();
  }, 240_000);

  it('writes the disk back: refused while the VM is powered on (the reason on the job page), then a quick rollback of the powered-off VM makes the disk the restore point again', async () => {
    // The guest changes after the restore point.
    await standIn.harness!.write(VM, deviceKey, 0, randomBytes(64 * 1024));
    await standIn.harness!.write(VM, deviceKey, 9 * 1024 * 1024, randomBytes(256 * 1024));
    const liveEqualsPoint = async () => {
      const live = (await standIn.harness!.vm(VM)).disks.find((d) => d.key === deviceKey)!.liveUri;
      const out = join(work, 'live.raw');
      await run('nbdcopy', [live, out]);
      try {
        return (await readFile(out)).equals(await readFile(pointRaw));
      } finally {
        await rm(out, { force: true });
      }
    };
    expect(await liveEqualsPoint()).toBe(false);

    const writeBack = async () => {
      await page.goto(`${sys.api}/disk-restore?backup=${pointId}`);
      await page.getByTestId('disk-point-chosen').waitFor();
      await page.getByTestId('restore-confirm').check();
      await page.getByTestId('restore-disk').click();
      await page.waitForURL(/\/jobs\/[^/?]+\?kind=restore$/, { timeout: 60_000 });
    };
    await writeBack();
    const refusal = page.getByTestId('job-error');
    await refusal.waitFor({ timeout: 180_000 });
    const said = await refusal.innerText();
    expect(said).toMatch(/poweredOn; power it off/);
    await page.screenshot({ path: join(ARTIFACTS, 'console-disk-restore-refused.png'), fullPage: true });

    const vc = await VSphereClient.connect({
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      tls: { thumbprint: standIn.thumbprint },
    });
    try {
      await vc.powerOff((await vc.findVm({ name: VM })).ref);
    } finally {
      await vc.logout().catch(() => undefined);
    }
    await writeBack();
    const runId = new URL(page.url()).pathname.split('/').pop()!;
    const log = page.getByTestId('event-log');
    try {
      await log.filter({ hasText: /done: quick/ }).waitFor({ timeout: 240_000 });
    } catch (err) {
      const job = await sys.call('GET', `/api/v1/jobs/${runId}`);
      throw new Error(
        `${(err as Error).message}\njob: ${JSON.stringify(job.body).slice(0, 2000)}\nworker: ${sys.logs.get('backup-worker')?.slice(-15).join('\n')}`,
      );
    }
    expect(await page.getByTestId('job-error').count()).toBe(0);
    expect(await liveEqualsPoint()).toBe(true);
    process.stdout.write(
      `console e2e: write-back refused with "${said}"; quick rollback: ${await log.locator('li', { hasText: 'done: quick' }).innerText()}\n`,
    );
    await page.screenshot({ path: join(ARTIFACTS, 'console-disk-restore-done.png'), fullPage: true });
    // The Jobs page keeps the restore runs started from this tab (they make no restore points) and opens them as disk restores.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click();
    await page
      .locator('#queued')
      .getByRole('link', { name: new RegExp(`${VM} \\(disk restore\\) · ${runId.slice(0, 8)}`) })
      .click();
    await page.getByRole('heading', { name: `Disk restore ${runId.slice(0, 8)}` }).waitFor();
    await page.getByRole('link', { name: VM, exact: true }).waitFor();
  }, 600_000);

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
    // The disk-restore page lists exports for a viewer but offers no export, download or write-back.
    await viewer.getByRole('link', { name: 'Disk restore' }).click();
    await viewer.getByTestId('no-exports').waitFor();
    expect(await viewer.getByTestId('start-export').count()).toBe(0);
    expect(await viewer.getByTestId('download-image').count()).toBe(0);
    expect(await viewer.getByTestId('restore-disk').count()).toBe(0);
    await viewer.goBack();
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
