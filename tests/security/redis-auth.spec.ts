import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, QueueEvents, Worker } from 'bullmq';
import Redis from 'ioredis';
import { loadGatewaySettings } from '@sendense/config';
import { run, waitFor } from '@sendense/process';
import { freePort, ROOT } from '../support/system';
import { send, startTestGateway, type TestGateway } from './support/gateway';

/**
 * Issue 14, finding 6: Redis without auth. A Redis that setup starts
 * (scripts/redis-start.sh, the script setup.sh runs when no Redis runs yet)
 * lets nobody in but the ACL user `sendense` with its password, and the
 * services reach their queues with REDIS_URL=redis://sendense:<pw>@host:port.
 * A private redis-server on a free port: the host's shared Redis is never
 * touched.
 */

jest.setTimeout(60_000);

interface Health {
  status: string;
  dependencies: { name: string; ok: boolean; detail?: string }[];
}

describe("Redis as setup starts it: only the services' user gets in (issue 14)", () => {
  let dir: string;
  let port: number;
  const password = randomBytes(18)
    .toString('base64')
    .replace(/[^A-Za-z0-9]/g, '');
  const url = () => `redis://sendense:${password}@127.0.0.1:${port}`;
  const clients: Redis[] = [];
  const client = (u: string) => {
    const c = new Redis(u, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };

  /** What Redis answered a client of this URL that tried to connect and PING ('' when it got in). */
  const refusal = async (u: string): Promise<string> => {
    const c = client(u);
    const errors: string[] = [];
    c.on('error', (e: Error) => errors.push(e.message));
    try {
      await c.connect();
      await c.ping();
      return '';
    } catch (err) {
      return [...errors, (err as Error).message].join('; ');
    } finally {
      c.disconnect();
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sendense-redis-auth-'));
    port = await freePort();
    await run('bash', [join(ROOT, 'scripts/redis-start.sh'), join(dir, 'redis.conf'), join(dir, 'data'), join(dir, 'redis.log'), String(port)], {
      env: { ...process.env, SENDENSE_REDIS_PASSWORD: password },
      timeoutMs: 20_000,
    });
    await waitFor(
      async () => {
        const c = client(url());
        try {
          await c.connect();
          return (await c.ping()) === 'PONG';
        } catch {
          return false;
        } finally {
          c.disconnect();
        }
      },
      { timeoutMs: 15_000, intervalMs: 100, message: 'the private redis-server to answer' },
    );
  });

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    const pid = Number((await readFile(join(dir, 'data', `redis-${port}.pid`), 'utf8').catch(() => '')).trim());
    if (pid > 0) process.kill(pid, 'SIGTERM');
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    if (pid > 0) await waitFor(() => !alive(), { timeoutMs: 10_000, intervalMs: 100, message: 'the private redis-server to stop' });
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a client without credentials and one with a wrong password; the password is only in a 0600 file, never on a command line', async () => {
    expect(await refusal(`redis://127.0.0.1:${port}`)).toMatch(/NOAUTH/);
    const cli = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'keys', '*'], { timeoutMs: 10_000 });
    expect(cli.stdout).toMatch(/NOAUTH/);
    expect(await refusal(`redis://sendense:not${password}@127.0.0.1:${port}`)).toMatch(/WRONGPASS/);
    // The default user is off: its name with the services' password does not get in either.
    expect(await refusal(`redis://default:${password}@127.0.0.1:${port}`)).toMatch(/WRONGPASS/);

    expect((await stat(join(dir, 'redis.conf'))).mode & 0o777).toBe(0o600);
    const ps = await run('ps', ['-eo', 'args='], { timeoutMs: 10_000 });
    const server = ps.stdout.split('\n').filter((l) => l.includes(`:${port}`) && l.includes('redis-server'));
    expect(server).toHaveLength(1);
    expect(ps.stdout).not.toContain(password);
  });

  it("the services' REDIS_URL gets in: settings take it, BullMQ runs a job through it as the worker does", async () => {
    expect(loadGatewaySettings({ REDIS_URL: url() }).REDIS_URL).toBe(url());
    const ours = client(url());
    await ours.connect();
    expect(await ours.call('ACL', 'WHOAMI')).toBe('sendense');
    // The connection the gateway and the backup worker build from REDIS_URL.
    const connection = { url: url(), maxRetriesPerRequest: null };
    const name = `redis-auth-${process.pid}`;
    const queue = new Queue(name, { connection });
    const events = new QueueEvents(name, { connection });
    const worker = new Worker(name, async (job) => ({ doubled: (job.data as { n: number }).n * 2 }), { connection });
    try {
      await events.waitUntilReady();
      const job = await queue.add('double', { n: 21 });
      expect(await job.waitUntilFinished(events, 15_000)).toEqual({ doubled: 42 });
    } finally {
      await worker.close();
      await events.close();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  describe('the gateway', () => {
    let gw: TestGateway | undefined;
    afterEach(async () => {
      await gw?.close();
      gw = undefined;
    });

    it("with the services' URL: health shows Redis up", async () => {
      gw = await startTestGateway({ REDIS_URL: url() });
      const r = await send(gw, 'GET', '/api/v1/health', { key: gw.keys.admin });
      const redis = (r.body as Health).dependencies.find((d) => d.name === 'redis');
      expect(redis).toMatchObject({ ok: true });
    });

    it('with a wrong password: health shows Redis down, and never the password', async () => {
      const badPassword = `bad${password}`;
      gw = await startTestGateway({ REDIS_URL: `redis://sendense:${badPassword}@127.0.0.1:${port}` });
      const r = await send(gw, 'GET', '/api/v1/health', { key: gw.keys.admin });
      expect(r.status).toBe(503);
      const redis = (r.body as Health).dependencies.find((d) => d.name === 'redis');
      expect(redis?.ok).toBe(false);
      expect(redis?.detail).toBeTruthy();
      expect(JSON.stringify(r.body)).not.toContain(badPassword);
    });
  });
});
