import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { RawApi } from '@sendense/api-client';
import { Ctx, type Io } from './context';
import { watchJob } from './progress';

function io(): Io & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c: Buffer) => (o += c.toString()));
  stderr.on('data', (c: Buffer) => (e += c.toString()));
  return { stdout, stderr, env: {}, out: () => o, err: () => e };
}

const progress = (pct: number) => ({ run_id: 'r1', status: 'running', progress: { phase: 'copying', percent: pct, disks: [] }, error: null });

/**
 * `job watch` / `backup start --wait` follow the job's server-sent events
 * over a real HTTP connection: when the stream drops (the socket is
 * destroyed mid-stream, or the gateway answers 503 for a while) the CLI
 * reconnects and ends with the job's final status; a 404 is not retried.
 */
describe('watchJob: the progress stream reconnects', () => {
  let server: Server;
  let base: string;
  let connects = 0;
  let mode: 'drop-then-end' | 'unavailable-then-end' | 'missing' = 'drop-then-end';

  beforeAll(async () => {
    server = createServer((req, res) => {
      connects++;
      if (mode === 'missing') {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ statusCode: 404, message: 'no job with run id r1' }));
        return;
      }
      if (mode === 'unavailable-then-end' && connects <= 2) {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ statusCode: 503, message: 'restarting' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      if (connects === 1) {
        res.write(`event: progress\ndata: ${JSON.stringify(progress(10))}\n\n`);
        // The connection dies mid-stream, without an end event.
        setTimeout(() => req.socket.destroy(), 50);
        return;
      }
      res.write(`event: progress\ndata: ${JSON.stringify(progress(90))}\n\n`);
      res.end(`event: end\ndata: ${JSON.stringify({ status: 'completed' })}\n\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => (connects = 0));

  const watch = (o: { quiet?: boolean } = {}) => {
    const i = io();
    const ctx = new Ctx(i, { apiUrl: base, apiKey: 'sdk_test_key', quiet: o.quiet });
    return { i, result: watchJob(ctx, new RawApi({ baseUrl: base, apiKey: 'sdk_test_key' }), 'r1', { jsonLines: true, reconnectForMs: 20_000 }) };
  };

  it('a stream cut mid-job is reconnected and the watch ends with the job status', async () => {
    mode = 'drop-then-end';
    const { i, result } = watch();
    expect(await result).toMatchObject({ status: 'completed' });
    expect(connects).toBe(2);
    const lines = i
      .out()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; progress?: { percent: number } });
    expect(lines.map((l) => l.progress?.percent)).toEqual([10, 90]);
  }, 30_000);

  it('a gateway answering 503 for a while is waited out', async () => {
    mode = 'unavailable-then-end';
    const { result } = watch();
    expect(await result).toMatchObject({ status: 'completed' });
    expect(connects).toBe(3);
  }, 30_000);

  it('a 404 is not retried', async () => {
    mode = 'missing';
    const { result } = watch();
    await expect(result).rejects.toMatchObject({ status: 404 });
    expect(connects).toBe(1);
  }, 30_000);
});
