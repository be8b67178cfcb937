import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { RestoreServiceClient, RestoreServiceError } from '@sendense/contracts';
import { extract } from 'tar-stream';
import { applyModel, fileSha, mkfs, partitionedRaw, randomData, takeRestorePoint, withRwMount, type Model, type Node } from '../../test/fixtures';
import { RestoreModule } from './restore.module';
import { RestoreService } from './restore.service';

/** The HTTP surface over a real mount: statuses, headers, streaming, traversal -> 400. */

jest.setTimeout(120_000);

const data = randomData(3 * 1024 * 1024 + 17);
const model: Model = new Map<string, Node>([
  ['docs', { kind: 'dir' }],
  ['docs/a b.txt', { kind: 'file', data: Buffer.from('spaces\n') }],
  ['docs/data.bin', { kind: 'file', data }],
  ['docs/empty', { kind: 'file', data: Buffer.alloc(0) }],
  ['Ünï.txt', { kind: 'file', data: Buffer.from('ü\n') }],
  ['links', { kind: 'dir' }],
  ['links/etc', { kind: 'symlink', target: '/etc' }],
]);

let work: string;
let image: string;
let imageSum: string;
let app: INestApplication;

beforeAll(async () => {
  work = await mkdtemp('/tmp/sendense-restore-http-');
  const raw = join(work, 'disk.raw');
  const [p1] = await partitionedRaw(raw, 80, 'gpt', [{ type: 'L' }]);
  await mkfs(raw, p1!, 'ext4');
  await withRwMount(raw, p1!, 'ext4', work, (d) => applyModel(d, model));
  image = join(work, 'full.qcow2');
  await takeRestorePoint(raw, image);
  await rm(raw);
  imageSum = await fileSha(image);
  const moduleRef = await Test.createTestingModule({
    imports: [
      RestoreModule.forRoot({
        mountRoot: join(work, 'mnt'),
        runDir: join(work, 'run'),
        mode: 'fuse-loop',
        idleTimeoutMs: 0,
        allowedImageRoots: [work],
        log: () => undefined,
      }),
    ],
  }).compile();
  app = moduleRef.createNestApplication({ logger: false });
  app.enableShutdownHooks();
  await app.init();
});

afterAll(async () => {
  await app?.close();
  if (work) {
    expect(await fileSha(image)).toBe(imageSum);
    await rm(work, { recursive: true, force: true });
  }
});

describe('RestoreController', () => {
  let mountId: string;

  it('mounts, lists mounts and refuses bad bodies', async () => {
    const res = await request(app.getHttpServer()).post('/restore/mount').send({ imagePath: image }).expect(201);
    mountId = res.body.mountId;
    expect(res.body.partitions[0]).toMatchObject({ name: 'p1', fsType: 'ext4', mounted: true });
    const again = await request(app.getHttpServer())
      .post('/restore/mount')
      .send({ chain: [image], reuse: true })
      .expect(201);
    expect(again.body.mountId).toBe(mountId);
    await request(app.getHttpServer()).post('/restore/mount').send({ imagePath: 'relative.qcow2' }).expect(400);
    await request(app.getHttpServer()).post('/restore/mount').send({ chain: 'x' }).expect(400);
    await request(app.getHttpServer()).post('/restore/mount').send({ imagePath: image, reuse: 'yes' }).expect(400);
    await request(app.getHttpServer()).post('/restore/mount').send({ imagePath: image, mountId: 7 }).expect(400);
    await request(app.getHttpServer()).post('/restore/mount').send({ imagePath: '/etc/passwd' }).expect(422);
    await request(app.getHttpServer())
      .post('/restore/mount')
      .send({ chain: [image, join(work, 'other.qcow2')] })
      .expect(422);
    const list = await request(app.getHttpServer()).get('/restore').expect(200);
    expect(list.body.mounts.map((m: { mountId: string }) => m.mountId)).toEqual([mountId]);
    await request(app.getHttpServer()).get(`/restore/${mountId}`).expect(200);
    const inUse = await request(app.getHttpServer()).get('/restore/images-in-use').expect(200);
    expect(inUse.body.images).toEqual([image]);
  });

  it('lists a directory with pagination', async () => {
    const res = await request(app.getHttpServer()).get(`/restore/${mountId}/files`).query({ path: 'p1/docs', limit: '2', offset: '1' }).expect(200);
    expect(res.body.total).toBe(3);
    expect(res.body.entries.map((e: { name: string }) => e.name)).toEqual(['data.bin', 'empty']);
    expect(res.body.entries[0]).toMatchObject({ path: 'p1/docs/data.bin', type: 'file', size: data.length });
    await request(app.getHttpServer()).get(`/restore/${mountId}/files`).query({ path: 'p1', limit: 'many' }).expect(400);
    await request(app.getHttpServer()).get(`/restore/${mountId}/files?path=a&path=b`).expect(400);
  });

  it.each([['../../etc'], ['p1/../../../etc'], ['/etc'], ['p1/links/etc'], ['p1/%2e%2e/%2e%2e']])('answers 400 to traversal %j', async (path) => {
    // supertest encodes the query; the server decodes it back to `path` (and
    // the %2e case arrives decoded as '..').
    const p = path.includes('%') ? decodeURIComponent(path) : path;
    const res = await request(app.getHttpServer()).get(`/restore/${mountId}/files`).query({ path: p }).expect(400);
    expect(res.body.error).toBe('PATH_REJECTED');
    await request(app.getHttpServer())
      .get(`/restore/${mountId}/download`)
      .query({ path: `${p}/passwd` })
      .expect(400);
    await request(app.getHttpServer()).get(`/restore/${mountId}/archive`).query({ path: p }).expect(400);
  });

  it('downloads whole files and ranges', async () => {
    const full = await request(app.getHttpServer())
      .get(`/restore/${mountId}/download`)
      .query({ path: 'p1/docs/data.bin' })
      .buffer(true)
      .parse((res, cb) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => cb(null, Buffer.concat(parts)));
      })
      .expect(200);
    expect(full.headers['content-length']).toBe(String(data.length));
    expect(full.headers['accept-ranges']).toBe('bytes');
    expect(
      createHash('sha256')
        .update(full.body as Buffer)
        .digest('hex'),
    ).toBe(createHash('sha256').update(data).digest('hex'));

    const part = await request(app.getHttpServer())
      .get(`/restore/${mountId}/download`)
      .query({ path: 'p1/docs/data.bin' })
      .set('Range', 'bytes=100-199')
      .buffer(true)
      .parse((res, cb) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => cb(null, Buffer.concat(parts)));
      })
      .expect(206);
    expect(part.headers['content-range']).toBe(`bytes 100-199/${data.length}`);
    expect(part.headers['content-length']).toBe('100');
    expect((part.body as Buffer).equals(data.subarray(100, 200))).toBe(true);

    const suffix = await request(app.getHttpServer()).get(`/restore/${mountId}/download`).query({ path: 'p1/Ünï.txt' }).set('Range', 'bytes=-2').expect(206);
    expect(suffix.headers['content-range']).toBe('bytes 1-2/3');
    expect(suffix.headers['content-disposition']).toContain("filename*=UTF-8''%C3%9Cn%C3%AF.txt");

    const head = await request(app.getHttpServer()).head(`/restore/${mountId}/download`).query({ path: 'p1/docs/data.bin' }).expect(200);
    expect(head.headers['content-length']).toBe(String(data.length));
    const st = await request(app.getHttpServer()).get(`/restore/${mountId}/stat`).query({ path: 'p1/links/etc' }).expect(200);
    expect(st.body).toMatchObject({ type: 'symlink', symlinkTarget: '/etc', path: 'p1/links/etc' });

    const bad = await request(app.getHttpServer())
      .get(`/restore/${mountId}/download`)
      .query({ path: 'p1/docs/data.bin' })
      .set('Range', `bytes=${data.length}-`)
      .expect(416);
    expect(bad.headers['content-range']).toBe(`bytes */${data.length}`);
    const empty = await request(app.getHttpServer()).get(`/restore/${mountId}/download`).query({ path: 'p1/docs/empty' }).expect(200);
    expect(empty.headers['content-length']).toBe('0');
    await request(app.getHttpServer()).get(`/restore/${mountId}/download`).query({ path: 'p1/docs' }).expect(400);
    await request(app.getHttpServer()).get(`/restore/${mountId}/download`).query({ path: 'p1/nope' }).expect(404);
  });

  it('streams a directory as tar', async () => {
    const res = await request(app.getHttpServer())
      .get(`/restore/${mountId}/archive`)
      .query({ path: 'p1/docs' })
      .buffer(true)
      .parse((r, cb) => {
        const parts: Buffer[] = [];
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('end', () => cb(null, Buffer.concat(parts)));
      })
      .expect(200);
    expect(res.headers['content-type']).toBe('application/x-tar');
    const names: string[] = [];
    const ex = extract();
    await new Promise<void>((resolve, reject) => {
      ex.on('entry', (h, body, next) => {
        names.push(`${h.name}:${h.size ?? 0}`);
        body.on('end', next);
        body.resume();
      });
      ex.on('finish', resolve);
      ex.on('error', reject);
      ex.end(res.body as Buffer);
    });
    expect(names.sort()).toEqual(['docs/a b.txt:7', `docs/data.bin:${data.length}`, 'docs/empty:0', 'docs:0'].sort());
  });

  it('unmounts and then answers 404', async () => {
    await request(app.getHttpServer()).delete(`/restore/${mountId}`).expect(204);
    await request(app.getHttpServer()).get(`/restore/${mountId}/files`).expect(404);
    await request(app.getHttpServer()).delete(`/restore/${mountId}`).expect(404);
    expect(app.get(RestoreService).manager.list()).toEqual([]);
  });
});

describe('RestoreServiceClient (libs/contracts) against the controller', () => {
  let client: RestoreServiceClient;

  beforeAll(async () => {
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as AddressInfo;
    client = new RestoreServiceClient({ baseUrl: `http://127.0.0.1:${port}` });
  });

  it('speaks every route with the contract types', async () => {
    const m = await client.mount({ imagePath: image });
    expect(m.partitions[0]).toMatchObject({ name: 'p1', fsType: 'ext4', mounted: true });
    expect((await client.mount({ chain: [image], reuse: true })).mountId).toBe(m.mountId);
    expect((await client.list()).map((x) => x.mountId)).toEqual([m.mountId]);
    expect((await client.get(m.mountId)).root).toBe(m.root);
    expect(await client.imagesInUse()).toEqual([image]);
    const page = await client.files(m.mountId, { path: 'p1/docs', offset: 1, limit: 2 });
    expect(page.entries.map((e) => e.name)).toEqual(['data.bin', 'empty']);
    expect(await client.stat(m.mountId, 'p1/links/etc')).toMatchObject({ type: 'symlink', symlinkTarget: '/etc' });

    const part = await client.download(m.mountId, 'p1/docs/data.bin', { range: 'bytes=100-199' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${data.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(100, 200))).toBe(true);
    const tar = await client.archive(m.mountId, 'p1/docs');
    expect(tar.headers.get('content-type')).toBe('application/x-tar');
    expect((await tar.arrayBuffer()).byteLength).toBeGreaterThan(data.length);

    await client.unmount(m.mountId);
    expect(await client.list()).toEqual([]);
  });

  it('keeps the status and JSON body of errors, and tells an unreachable service apart', async () => {
    const err = await client.files(randomUUID(), { path: 'p1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreServiceError);
    expect(err).toMatchObject({ status: 404, reachable: true, body: { error: 'MOUNT_NOT_FOUND' } });
    const bad = await client.files(randomUUID(), { limit: 'many' }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ status: 400 });
    const gone = new RestoreServiceClient({ baseUrl: 'http://127.0.0.1:1' });
    const down = await gone.list().catch((e: unknown) => e);
    expect(down).toMatchObject({ status: 503, reachable: false });
    expect((down as Error).message).toMatch(/restore-service at http:\/\/127.0.0.1:1 is not reachable/);
    expect(() => new RestoreServiceClient({ baseUrl: 'tcp://127.0.0.1:8092' })).toThrow(/not http/);
  });
});
