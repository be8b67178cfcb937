import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, ApiUnreachableError, RawApi, createApiClient, errorMessage, parseEventStream, unwrap } from './index';

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const s of chunks) c.enqueue(enc.encode(s));
      c.close();
    },
  });
}

describe('parseEventStream', () => {
  it('splits events across chunk boundaries and joins data lines', async () => {
    const got = [];
    for await (const e of parseEventStream(
      streamOf(['event: progress\nda', 'ta: {"a":1}\n\n: comment\n', 'data: x\r\ndata: y\r\n\r\nevent: end\ndata: {}\n\n']),
    ))
      got.push(e);
    expect(got).toEqual([
      { event: 'progress', data: '{"a":1}' },
      { event: 'message', data: 'x\ny' },
      { event: 'end', data: '{}' },
    ]);
  });
});

describe('errorMessage', () => {
  it('reads the shapes Nest answers with', () => {
    expect(errorMessage({ message: 'no such VM' }, 'f')).toBe('no such VM');
    expect(errorMessage({ message: ['a', 'b'] }, 'f')).toBe('a; b');
    expect(errorMessage({ message: { message: 'inner' } }, 'f')).toBe('inner');
    expect(errorMessage({ error: 'Not Found' }, 'f')).toBe('Not Found');
    expect(errorMessage(undefined, 'f')).toBe('f');
  });
});

describe('client against a real HTTP server', () => {
  let server: Server;
  let base = '';
  const seen: Array<{ url?: string; auth?: string }> = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url, auth: req.headers.authorization });
      if (req.url?.startsWith('/api/v1/vms')) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify([{ vm_name: 'a' }]));
      } else if (req.url?.startsWith('/api/v1/jobs/r1/progress')) {
        res.setHeader('content-type', 'text/event-stream');
        res.end('event: end\ndata: {"status":"completed"}\n\n');
      } else {
        res.statusCode = 404;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ statusCode: 404, message: 'no backup with id x', error: 'Not Found' }));
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('sends the key, answers data, and turns a 404 into ApiError with the message', async () => {
    const c = createApiClient({ baseUrl: base, apiKey: 'sdk_k' });
    expect(await unwrap(c.GET('/api/v1/vms'))).toEqual([{ vm_name: 'a' }]);
    expect(seen.at(-1)).toEqual({ url: '/api/v1/vms', auth: 'Bearer sdk_k' });
    const err = await unwrap(c.GET('/api/v1/backup/{id}', { params: { path: { id: 'x' } } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
    expect((err as ApiError).message).toBe('no backup with id x');
  });

  it('raw requests and events', async () => {
    const raw = new RawApi({ baseUrl: base, apiKey: 'k2' });
    const evs = [];
    for await (const e of raw.events('/api/v1/jobs/r1/progress')) evs.push(e);
    expect(evs).toEqual([{ event: 'end', data: '{"status":"completed"}' }]);
    await expect(raw.request('GET', '/nope', { query: { path: 'a b' } })).rejects.toMatchObject({ status: 404, url: `${base}nope?path=a+b` });
  });

  it('an unreachable gateway is its own error', async () => {
    const c = createApiClient({ baseUrl: 'http://127.0.0.1:1' });
    await expect(unwrap(c.GET('/api/v1/vms'))).rejects.toBeInstanceOf(ApiUnreachableError);
    await expect(new RawApi({ baseUrl: 'http://127.0.0.1:1' }).request('GET', '/x')).rejects.toThrow(/cannot reach the API gateway at http:\/\/127.0.0.1:1/);
  });
});
