/**
 * The demo (`npm run demo` runs it after setting up and starting the
 * services and the VMware stand-in): register the stand-in's vCenter, back
 * up a VM, change a file in the guest, back up again (incremental), then
 * mount both restore points and read the file as it was at each.
 * Safe to run again: what exists is reused, and each run adds restore points.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HarnessClient } from '@sendense/vsphere';

const ROOT = join(__dirname, '..');
const STATE = join(ROOT, '.sendense');
const API = process.env['SENDENSE_API_URL'] ?? `http://127.0.0.1:${process.env['GATEWAY_PORT'] ?? 8080}`;
const VM = 'demo-web01';
const REPO_PATH = process.env['DEMO_REPOSITORY_PATH'] ?? '/var/lib/sendense/backups';

const say = (s: string) => process.stdout.write(`${s}\n`);

async function api<T>(key: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${json?.message ? JSON.stringify(json.message) : text}`);
  return json as T;
}

function bar(done: number, total: number): string {
  const pct = total ? Math.min(100, (done / total) * 100) : 100;
  const n = Math.round(pct / 4);
  return `[${'#'.repeat(n)}${'.'.repeat(25 - n)}] ${pct.toFixed(0).padStart(3)}%`;
}

async function backup(key: string, type: 'full' | 'incremental') {
  const started = Date.now();
  const run = await api<{ run_id: string }>(key, 'POST', '/api/v1/backup/start', { vm_name: VM, backup_type: type, repository: 'demo' });
  for (;;) {
    const s = await api<{
      status: string;
      error: string | null;
      progress: { phase: string; bytesDone: number; bytesTotal: number } | null;
      backups: { id: string; disk_id: number; backup_type: string; fallback_reason: string | null; bytes_transferred: number; allocated_bytes: number }[];
    }>(key, 'GET', `/api/v1/jobs/${run.run_id}`);
    if (s.progress && process.stdout.isTTY) process.stdout.write(`\r  ${s.progress.phase.padEnd(10)} ${bar(s.progress.bytesDone, s.progress.bytesTotal)}`);
    if (['completed', 'failed', 'cancelled'].includes(s.status)) {
      if (process.stdout.isTTY) process.stdout.write('\n');
      if (s.status !== 'completed') throw new Error(`the ${type} backup ${s.status}: ${s.error}`);
      say(`  ${type} backup done in ${((Date.now() - started) / 1000).toFixed(1)} s (run ${run.run_id})`);
      for (const b of s.backups) {
        say(
          `    disk ${b.disk_id}: ${b.backup_type} restore point ${b.id}, ${b.bytes_transferred} bytes copied, ${b.allocated_bytes} bytes stored` +
            (b.fallback_reason ? `\n      (ran as full: ${b.fallback_reason})` : ''),
        );
      }
      return s.backups;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function main(): Promise<void> {
  const key = (await readFile(join(STATE, 'admin.key'), 'utf8')).trim();
  const standIn = JSON.parse(await readFile(join(STATE, 'run', 'vcsim.json'), 'utf8')) as {
    url: string;
    username: string;
    password: string;
    harnessUrl: string;
  };
  const harness = new HarnessClient(standIn.harnessUrl);

  say('1. Register the VMware stand-in as a vCenter and import its VM');
  const vcs = await api<{ id: string; name: string; url: string }[]>(key, 'GET', '/api/v1/vcenters');
  let vc = vcs.find((v) => v.name === 'demo-vcsim');
  if (vc && vc.url !== standIn.url) throw new Error(`vCenter demo-vcsim is registered with ${vc.url}, the stand-in now runs at ${standIn.url}`);
  vc ??= await api(key, 'POST', '/api/v1/vcenters', {
    name: 'demo-vcsim',
    url: standIn.url,
    username: standIn.username,
    password: standIn.password,
    insecure: true,
    disk_reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl },
  });
  const imported = await api<{ context_id: string; disks: number }[]>(key, 'POST', `/api/v1/vcenters/${vc!.id}/import`, { vm_names: [VM] });
  say(`  ${VM}: context ${imported[0]!.context_id}, ${imported[0]!.disks} disks`);
  const repos = await api<{ name: string }[]>(key, 'GET', '/api/v1/repositories');
  if (!repos.some((r) => r.name === 'demo')) await api(key, 'POST', '/api/v1/repositories', { name: 'demo', type: 'local', path: REPO_PATH });
  say(`  repository "demo" at ${REPO_PATH}`);

  say('2. Back up the VM (incremental when a previous backup exists, else it runs as a full and says why)');
  const first = await backup(key, 'incremental');

  say('3. Change a file in the guest, then take an incremental backup');
  const vm = await harness.vm(VM);
  const stamp = new Date().toISOString();
  await harness.writeFile(VM, vm.disks[0]!.key, '/var/www/index.html', `<h1>Sendense demo, changed at ${stamp}</h1>\n`);
  await harness.assertGuestFsClean(VM, vm.disks[0]!.key);
  const second = await backup(key, 'incremental');

  say('4. Mount both restore points of disk 0 and read /var/www/index.html from each');
  const out = join(STATE, 'demo');
  await mkdir(out, { recursive: true });
  for (const [label, points] of [
    ['before', first],
    ['after', second],
  ] as const) {
    const point = points.find((b) => b.disk_id === 0)!;
    const m = await api<{ mount_id: string; partitions: { name: string; fsType: string | null; mounted: boolean }[] }>(key, 'POST', '/api/v1/restore/mount', {
      backup_id: point.id,
    });
    const part = m.partitions.find((p) => p.mounted);
    if (!part) throw new Error(`restore point ${point.id} has no mountable filesystem: ${JSON.stringify(m.partitions)}`);
    const listing = await api<{ entries: { name: string; type: string; size: number }[] }>(
      key,
      'GET',
      `/api/v1/restore/${m.mount_id}/files?path=${encodeURIComponent(`${part.name}/var/www`)}`,
    );
    const res = await fetch(`${API}/api/v1/restore/${m.mount_id}/download?path=${encodeURIComponent(`${part.name}/var/www/index.html`)}`, {
      headers: { authorization: `Bearer ${key}` },
    });
    if (!res.ok) throw new Error(`download of /var/www/index.html answered ${res.status}: ${await res.text()}`);
    const content = Buffer.from(await res.arrayBuffer());
    const file = join(out, `index.html.${label}`);
    await writeFile(file, content);
    say(`  ${label}: restore point ${point.id} (${point.backup_type}), mount ${m.mount_id}`);
    say(`    /var/www: ${listing.entries.map((e) => `${e.name} (${e.size} B)`).join(', ')}`);
    say(`    index.html: ${content.toString().trim()}  -> saved to ${file}`);
    await api(key, 'DELETE', `/api/v1/restore/${m.mount_id}`);
  }
  const chain = await api<{ chains: { disk_id: number; total_backups: number; total_size_bytes: number }[] }>(key, 'GET', `/api/v1/backup/chain?vm_name=${VM}`);
  say('5. Backup chains');
  for (const c of chain.chains) say(`  disk ${c.disk_id}: ${c.total_backups} restore points, ${c.total_size_bytes} bytes`);
  await harness.close();
  say(`Done. API ${API}/api/v1, Swagger ${API}/api/docs, Bull Board ${API}/admin/queues (user: anything, password: the key in .sendense/admin.key)`);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
