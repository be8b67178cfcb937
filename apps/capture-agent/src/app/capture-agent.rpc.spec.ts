import { createServer } from 'node:net';
import { Logger, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { loadCaptureAgentSettings } from '@sendense/config';
import { CaptureAgentClient, CaptureAgentError, type CopyEvent, type PrepareBackupRequest } from '@sendense/contracts';
import { run, waitFor } from '@sendense/process';
import { startStandIn, VSphereClient, type HarnessClient, type StandIn } from '@sendense/vsphere';
import { MiB, qcow2Target, sameContent, scratchDir, slowTarget, type NbdTarget } from '../testing/targets';
import { parsePrometheusText, sampleValue } from '@sendense/metrics/testing';
import { CaptureAgentModule } from './capture-agent.module';

// The Capture Agent as a Nest TCP microservice, driven by the typed client
// exactly as the backup-worker drives it.

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

// Real snapshots, qemu and NBD copies: seconds per test, more on a loaded host.
jest.setTimeout(90_000);

describe('Capture Agent over TCP with CaptureAgentClient', () => {
  const scratch = scratchDir('capture-agent-rpc');
  let standIn: StandIn;
  let harness: HarnessClient;
  let vc: VSphereClient;
  let app: INestMicroservice | undefined;
  let client: CaptureAgentClient;
  let metricsPort = 0;
  const targets: NbdTarget[] = [];

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    standIn = await startStandIn({
      stateDir: `${scratch.dir}/standin`,
      vms: [
        {
          name: 'rpc-vm',
          disks: [
            { sizeMiB: 16, content: { type: 'random', percent: 50, seed: 11 } },
            { sizeMiB: 8, content: { type: 'random', percent: 50, seed: 12 } },
          ],
        },
      ],
    });
    harness = standIn.harness as HarnessClient;
    vc = await VSphereClient.connect({ url: standIn.url, username: standIn.username, password: standIn.password, tls: { thumbprint: standIn.thumbprint } });
    const port = await freePort();
    metricsPort = await freePort();
    const settings = loadCaptureAgentSettings({
      CAPTURE_AGENT_HOST: '127.0.0.1',
      CAPTURE_AGENT_PORT: String(port),
      CAPTURE_DISK_PARALLELISM: '2',
      NODE_NAME: 'test-node',
      CAPTURE_AGENT_METRICS_PORT: String(metricsPort),
    });
    app = await NestFactory.createMicroservice<MicroserviceOptions>(CaptureAgentModule.forRoot(settings, { progressIntervalMs: 100 }), {
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port },
      logger: ['error'],
    });
    await app.listen();
    client = CaptureAgentClient.connect({ url: `tcp://127.0.0.1:${port}` });
  }, 240000);

  afterAll(async () => {
    await client?.close();
    await app?.close();
    for (const t of targets) await t.stop().catch(() => undefined);
    await vc?.logout().catch(() => undefined);
    await standIn?.stop();
    scratch.cleanup();
  });

  const request = (extra: Partial<PrepareBackupRequest> = {}): PrepareBackupRequest => ({
    runId: `rpc-${Date.now()}`,
    vcenter: { url: standIn.url, username: standIn.username, password: standIn.password, thumbprint: standIn.thumbprint },
    vm: { name: 'rpc-vm' },
    disks: [],
    allowEnableCbt: true,
    reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl as string },
    ...extra,
  });

  const hasSnapshot = async (moref: string) => (await vc.getVm(moref)).currentSnapshot !== undefined;

  it('answers health', async () => {
    expect(await client.health()).toEqual({ ok: true, node: 'test-node', diskParallelism: 2, sessions: 0 });
  });

  it('errors arrive as CaptureAgentError with code and retry flag', async () => {
    const cbtOff = await client.prepare(request({ allowEnableCbt: false })).catch((e: unknown) => e);
    expect(cbtOff).toBeInstanceOf(CaptureAgentError);
    expect(cbtOff).toMatchObject({ code: 'CBT_DISABLED', retryable: false });
    await expect(client.prepare(request({ vm: { name: 'ghost' } }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.prepare(request({ vcenter: { url: 'ftp://x', username: '', password: '' } }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(client.copy({ sessionId: 'no-such-session', targets: [] })).rejects.toMatchObject({ code: 'NOT_FOUND', retryable: false });
    expect(await client.release('no-such-session')).toEqual({ sessionId: 'no-such-session', released: false });
    expect(await client.cancel('no-such-session')).toEqual({ sessionId: 'no-such-session', cancelled: false });
  });

  it('prepare, streamed copy (progress then one done), release: targets identical to the snapshot, no snapshot left', async () => {
    const prep = await client.prepare(request());
    expect(prep).toMatchObject({ vmName: 'rpc-vm', cbtEnabledNow: true });
    expect(prep.disks.map((d) => [d.deviceKey, d.mode, d.fullReason])).toEqual([
      [2000, 'full', 'cbt-just-enabled'],
      [2001, 'full', 'cbt-just-enabled'],
    ]);
    const t0 = await qcow2Target(scratch.dir, 'rpc-0', 16 * MiB);
    const t1 = await qcow2Target(scratch.dir, 'rpc-1', 8 * MiB);
    targets.push(t0, t1);
    const events: CopyEvent[] = [];
    for await (const ev of client.copyEvents({
      sessionId: prep.sessionId,
      targets: [
        { deviceKey: 2000, uri: t0.uri },
        { deviceKey: 2001, uri: t1.uri },
      ],
      parallelDisks: 1,
      tuning: { requestSize: 64 * 1024, queueDepth: 2, connections: 1 },
    })) {
      events.push(ev);
    }
    const done = events[events.length - 1];
    expect(done.type).toBe('done');
    expect(events.filter((e) => e.type === 'done')).toHaveLength(1);
    expect(events.length).toBeGreaterThan(1);
    if (done.type !== 'done') throw new Error('unreachable');
    expect(done.disks.map((d) => [d.deviceKey, d.bytesWritten + d.bytesZeroed])).toEqual(prep.disks.map((d) => [d.deviceKey, d.bytesToCopy]));
    expect(done.disks.map((d) => d.changeId)).toEqual(prep.disks.map((d) => d.changeId));
    // parallelDisks 1: the second disk waits while the first copies.
    const waited = events.some((e) => e.type === 'progress' && e.disks[0].phase === 'copying' && e.disks[1].phase === 'waiting');
    expect(waited).toBe(true);
    await t0.stop();
    await t1.stop();
    for (const [t, key] of [
      [t0, 2000],
      [t1, 2001],
    ] as const) {
      const where = await harness.snapshotNbd(prep.vmMoref, prep.snapshotMoref, key);
      expect(await sameContent(t.file, where.uri)).toMatchObject({ identical: true });
    }
    const metrics = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    expect(sampleValue(metrics, 'sendense_capture_calls_total', { call: 'copy', result: 'ok' })).toBe(1);
    expect(sampleValue(metrics, 'sendense_capture_bytes_read_total')).toBe(done.disks.reduce((n, d) => n + d.bytesRead, 0));
    expect(sampleValue(metrics, 'sendense_capture_sessions')).toBe(1);
    expect(sampleValue(metrics, 'sendense_capture_disk_copy_duration_seconds_count')).toBe(2);
    expect(await client.release(prep.sessionId)).toEqual({ sessionId: prep.sessionId, released: true });
    expect(await hasSnapshot(prep.vmMoref)).toBe(false);
    console.log(
      `rpc copy: ${events.length - 1} progress events, ${done.disks.map((d) => `${d.bytesWritten + d.bytesZeroed} B in ${d.durationMs} ms`).join(', ')}`,
    );
  });

  it('aborting the client call cancels the copy on the agent (CANCELLED), release removes the snapshot', async () => {
    const prep = await client.prepare(request());
    const slow = await slowTarget(scratch.dir, 'rpc-slow', 16 * MiB, 20);
    targets.push(slow);
    const ac = new AbortController();
    let progress = 0;
    const err = await client
      .copy(
        { sessionId: prep.sessionId, targets: [{ deviceKey: 2000, uri: slow.uri }], tuning: { requestSize: 64 * 1024, queueDepth: 1, connections: 1 } },
        {
          signal: ac.signal,
          onProgress: (e) => {
            progress++;
            if (e.bytesDone > 0) ac.abort();
          },
        },
      )
      .catch((e: unknown) => e);
    expect(progress).toBeGreaterThan(0);
    expect(err).toBeInstanceOf(CaptureAgentError);
    expect(err).toMatchObject({ code: 'CANCELLED', retryable: false });
    expect(await client.release(prep.sessionId)).toMatchObject({ released: true });
    expect(await hasSnapshot(prep.vmMoref)).toBe(false);
  });

  /** Established connections to a Unix-socket NBD server (what a copy still holds open). */
  async function connectionsTo(socket: string): Promise<number> {
    const r = await run('ss', ['-xHn', 'state', 'connected'], { timeoutMs: 10_000 });
    return r.stdout.split('\n').filter((l) => l.includes(socket)).length;
  }
  const socketOf = (t: NbdTarget) => new URL(t.uri).searchParams.get('socket') as string;

  it('a copy nobody renews (its worker died) stops when the lease runs out: NBD connections closed, snapshot removed, late calls LEASE_EXPIRED', async () => {
    const prep = await client.prepare(request({ leaseMs: 1500 }));
    expect(prep.leaseMs).toBe(1500);
    const slow = await slowTarget(scratch.dir, 'rpc-lease-dead', 16 * MiB, 20);
    targets.push(slow);
    let last = 0;
    let connected = 0;
    const started = Date.now();
    // No holdLease: as if the worker was SIGKILLed after starting the copy.
    const err = await client
      .copy(
        { sessionId: prep.sessionId, targets: [{ deviceKey: 2000, uri: slow.uri }], tuning: { requestSize: 64 * 1024, queueDepth: 1, connections: 1 } },
        {
          onProgress: (e) => {
            last = e.bytesDone;
            if (!connected && e.bytesDone > 0) void connectionsTo(socketOf(slow)).then((n) => (connected = n));
          },
        },
      )
      .catch((e: unknown) => e);
    const stoppedMs = Date.now() - started;
    expect(err).toBeInstanceOf(CaptureAgentError);
    expect(err).toMatchObject({ code: 'LEASE_EXPIRED', retryable: true });
    expect((err as Error).message).toContain('rpc-vm');
    expect(last).toBeLessThan(prep.disks[0]!.bytesToCopy);
    expect(stoppedMs).toBeLessThan(1500 + 3000);
    expect(connected).toBeGreaterThan(0);
    await waitFor(async () => (await connectionsTo(socketOf(slow))) === 0, {
      timeoutMs: 5000,
      intervalMs: 100,
      message: 'the copy to close its NBD connections',
    });
    await waitFor(async () => !(await hasSnapshot(prep.vmMoref)), {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: "the expired session's snapshot to be removed",
    });
    await waitFor(async () => (await client.health()).sessions === 0, { timeoutMs: 5000, intervalMs: 50, message: 'the expired session to be forgotten' });
    const late = await client.renew(prep.sessionId).catch((e: unknown) => e);
    expect(late).toMatchObject({ code: 'LEASE_EXPIRED' });
    expect((late as Error).message).toMatch(/expired at .*1\.5 s lease .*CAPTURE_SESSION_LEASE.*snapshot .* removed; prepare a new session/);
    await expect(client.copy({ sessionId: prep.sessionId, targets: [{ deviceKey: 2000, uri: slow.uri }] })).rejects.toMatchObject({ code: 'LEASE_EXPIRED' });
    await expect(client.cancel(prep.sessionId)).rejects.toMatchObject({ code: 'LEASE_EXPIRED' });
    const rel = await client.release(prep.sessionId);
    expect(rel).toMatchObject({ released: false, leaseExpired: expect.stringContaining(prep.sessionId) });
    console.log(`lease 1.5 s not renewed: copy stopped ${stoppedMs} ms after it started, at ${last} of ${prep.disks[0]!.bytesToCopy} B`);
  });

  it('a copy many leases long keeps its session while the caller renews it (holdLease)', async () => {
    const prep = await client.prepare(request({ leaseMs: 1000 }));
    const slow = await slowTarget(scratch.dir, 'rpc-lease-long', 16 * MiB, 40);
    targets.push(slow);
    const lost: Error[] = [];
    const lease = client.holdLease(prep.sessionId, prep.leaseMs, (e) => lost.push(e));
    const started = Date.now();
    try {
      const done = await client.copy({
        sessionId: prep.sessionId,
        targets: [{ deviceKey: 2000, uri: slow.uri }],
        tuning: { requestSize: 64 * 1024, queueDepth: 1, connections: 1 },
      });
      const ms = Date.now() - started;
      expect(done.map((d) => d.bytesWritten + d.bytesZeroed)).toEqual([prep.disks[0]!.bytesToCopy]);
      expect(ms).toBeGreaterThan(3 * prep.leaseMs);
      // Held after the copy too, until release.
      await new Promise((r) => setTimeout(r, 2 * prep.leaseMs));
      expect(lost).toEqual([]);
      expect(await hasSnapshot(prep.vmMoref)).toBe(true);
      console.log(`lease 1 s renewed: a ${ms} ms copy completed`);
    } finally {
      lease.stop();
    }
    expect(await client.release(prep.sessionId)).toMatchObject({ released: true });
    expect(await hasSnapshot(prep.vmMoref)).toBe(false);
  });

  it('stopping the agent releases the snapshots it still holds', async () => {
    const prep = await client.prepare(request());
    expect(await hasSnapshot(prep.vmMoref)).toBe(true);
    expect((await client.health()).sessions).toBe(1);
    await app?.close();
    app = undefined;
    expect(await hasSnapshot(prep.vmMoref)).toBe(false);
  });
});
