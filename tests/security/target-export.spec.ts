import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NbdClient } from '@sendense/nbd';
import { run, waitFor } from '@sendense/process';
import { waitForJob } from '../support/system';
import { backupOk, guestDigest, leftovers, MiB, restorePointDigest, startFaultBed, type FaultBed, type JobDoc } from '../support/faults';

/**
 * Issue 14: a backup's target export is bound to the job that asked for it.
 * With NBD_TARGET_TLS=psk (the default) the nbd-exporter serves each target
 * with a TLS pre-shared key of its own, which only the Capture Agent gets
 * (in the copy request). While a job's target is live, a second local
 * process cannot open it: plain nbdcopy and qemu-img, nbdcopy over TLS with
 * a wrong key, our client with a wrong key. The job still completes.
 * That is the TCP transport (a Capture Agent on another host:
 * NBD_TARGET_TRANSPORT=tcp). On one host the target is a Unix socket
 * (transport auto): another local user cannot open it (the last case).
 */

const VM = 'sec-target-vm';

const failure = async (cmd: string, args: string[]): Promise<string | null> =>
  run(cmd, args, { timeoutMs: 20_000 }).then(
    () => null,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );

describe('backup-target NBD exports take only the job holding their key (issue 14)', () => {
  let bed: FaultBed;

  beforeAll(async () => {
    bed = await startFaultBed({
      env: { NBD_TARGET_TRANSPORT: 'tcp' },
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 256, content: { type: 'random', percent: 80, seed: 141 } }] }],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  it('while the copy runs, plain NBD, nbdcopy and our client without the key cannot open the target; the backup completes and reads back', async () => {
    const { sys } = bed;
    const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: 'full', repository: 'local' });
    expect(start.status).toBe(202);
    const agent = sys.daemons.get('capture-agent')!;
    // The target export appears before the copy starts; the agent is frozen there so the export stays live while we try it.
    type Row = NonNullable<Awaited<ReturnType<typeof sys.db.prisma.nbdExport.findFirst>>>;
    let found: Row | null = null;
    await waitFor(
      async () => {
        found = await sys.db.prisma.nbdExport.findFirst({ where: { nodeName: sys.node, writable: true, state: 'active', backupJobId: { not: null } } });
        if (found) process.kill(agent.pid!, 'SIGSTOP');
        return found !== null;
      },
      { timeoutMs: 120_000, intervalMs: 2, message: 'the target export to be active' },
    );
    const row = found as unknown as Row;
    let frozen = true;
    try {
      expect(row.tlsMode).toBe('psk');
      const plainUri = `nbd://${row.host}:${row.port}/${row.name}`;
      const tlsUri = `nbds://sendense@${row.host}:${row.port}/${row.name}`;

      // The key is in the exporter's 0600 file for qemu-nbd (a 0700 directory), and nowhere in any service's log.
      const keyDir = join(sys.env['NBD_STATE_DIR']!, 'psk', row.name);
      expect((await stat(keyDir)).mode & 0o777).toBe(0o700);
      expect((await stat(join(keyDir, 'keys.psk'))).mode & 0o777).toBe(0o600);
      const key = (await readFile(join(keyDir, 'keys.psk'), 'utf8')).trim().split(':')[1]!;
      expect(key).toMatch(/^[0-9a-f]{64}$/);
      for (const [app, lines] of sys.logs) expect({ app, leaked: lines.some((l) => l.includes(key)) }).toEqual({ app, leaked: false });

      // A local process without the key: plain qemu-img and nbdcopy (write and read) are refused by the server.
      const junk = join(bed.work, 'junk.raw');
      await writeFile(junk, randomBytes(MiB));
      expect(await failure('qemu-img', ['info', plainUri])).toMatch(/TLS|tls|negotiat/);
      expect(await failure('nbdcopy', ['--', junk, plainUri])).toMatch(/TLS|tls|negotiat/);
      expect(await failure('nbdcopy', ['--', plainUri, 'null:'])).toMatch(/TLS|tls|negotiat/);
      // nbdcopy over TLS with a key of its own making: the handshake fails.
      const wrongFile = join(bed.work, 'wrong.psk');
      await writeFile(wrongFile, `sendense:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
      expect(await failure('nbdcopy', ['--', junk, `${tlsUri}?tls-psk-file=${wrongFile}`])).not.toBeNull();
      // Our client: no key, a wrong key.
      await expect(NbdClient.connect(plainUri)).rejects.toThrow(/TLS_REQD/);
      await expect(NbdClient.connect({ uri: tlsUri, tlsPsk: { identity: 'sendense', key: randomBytes(32).toString('hex') } })).rejects.toThrow(
        /TLS-PSK handshake failed/,
      );

      // Control: the same address with the export's key opens (so the refusals above are the key's doing).
      const rightFile = join(bed.work, 'right.psk');
      await writeFile(rightFile, `sendense:${key}\n`, { mode: 0o600 });
      const size = await run('nbdinfo', ['--size', `${tlsUri}?tls-psk-file=${rightFile}`], { timeoutMs: 20_000 });
      expect(Number(size.stdout.trim())).toBe(256 * MiB);
    } finally {
      if (frozen) process.kill(agent.pid!, 'SIGCONT');
      frozen = false;
    }

    const doc = await waitForJob<JobDoc>(sys, start.body.run_id, 240_000);
    expect(doc.status).toBe('completed');
    expect(await restorePointDigest(bed, doc.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
    // The key went with the export.
    await expect(stat(join(sys.env['NBD_STATE_DIR']!, 'psk', row.name))).rejects.toThrow(/ENOENT/);
    expect((await leftovers(bed)).filter((l) => !l.startsWith('snapshot '))).toEqual([]);
  }, 600_000);

  it('an incremental into a TLS target completes too', async () => {
    await bed.standIn.harness!.write(VM, bed.keys.get(VM)![0]!, 5 * MiB, randomBytes(2 * MiB));
    const doc = await backupOk(bed, VM, 'incremental');
    expect(doc.backups[0]!.backup_type).toBe('incremental');
    expect(await restorePointDigest(bed, doc.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
  }, 300_000);
});

describe('on one host the backup target is a Unix socket another local user cannot open', () => {
  let bed: FaultBed;
  const UVM = 'sec-unix-vm';

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [{ name: UVM, changeTrackingEnabled: true, disks: [{ sizeMiB: 128, content: { type: 'random', percent: 80, seed: 142 } }] }],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  it('while the copy runs, user nobody cannot open the socket (0700 sockets dir); the backup completes and reads back', async () => {
    const { sys } = bed;
    const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: UVM, backup_type: 'full', repository: 'local' });
    expect(start.status).toBe(202);
    const agent = sys.daemons.get('capture-agent')!;
    type Row = NonNullable<Awaited<ReturnType<typeof sys.db.prisma.nbdExport.findFirst>>>;
    let found: Row | null = null;
    await waitFor(
      async () => {
        found = await sys.db.prisma.nbdExport.findFirst({ where: { nodeName: sys.node, writable: true, state: 'active', backupJobId: { not: null } } });
        if (found) process.kill(agent.pid!, 'SIGSTOP');
        return found !== null;
      },
      { timeoutMs: 120_000, intervalMs: 2, message: 'the target export to be active' },
    );
    const row = found as unknown as Row;
    try {
      expect([row.port, row.tlsMode]).toEqual([null, null]);
      const socket = row.socketPath!;
      expect(socket.startsWith(join(sys.env['NBD_STATE_DIR']!, 'sockets') + '/')).toBe(true);
      expect((await stat(join(sys.env['NBD_STATE_DIR']!, 'sockets'))).mode & 0o777).toBe(0o700);
      const uri = `nbd+unix:///${row.name}?socket=${socket}`;
      // nobody, in group nogroup only: refused by the file system, for reading and for writing.
      const asNobody = (cmd: string, ...args: string[]) => failure('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', cmd, ...args]);
      expect(await asNobody('nbdinfo', '--size', uri)).toMatch(/Permission denied/);
      expect(await asNobody('nbdcopy', '--', 'null:', uri)).not.toBeNull();
      // Control: the exporter's user (root here) opens it.
      expect(Number((await run('nbdinfo', ['--size', uri], { timeoutMs: 20_000 })).stdout.trim())).toBe(128 * MiB);
    } finally {
      process.kill(agent.pid!, 'SIGCONT');
    }
    const doc = await waitForJob<JobDoc>(sys, start.body.run_id, 240_000);
    expect(doc.status).toBe('completed');
    expect(await restorePointDigest(bed, doc.backups[0]!)).toBe(await guestDigest(bed, UVM, 0));
    await expect(stat(row.socketPath!)).rejects.toThrow(/ENOENT/);
  }, 600_000);
});
