import { BadRequestException, Controller, Get, HttpException, Logger, type INestApplication } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { ServerErrorFilter } from './server-error.filter';

@Controller()
class FailingController {
  @Get('crash')
  crash(): never {
    throw new Error('restore_mounts insert failed', { cause: Object.assign(new Error('Lock wait timeout exceeded'), { code: 'ER_LOCK_WAIT_TIMEOUT' }) });
  }

  @Get('passed-on')
  passedOn(): never {
    // What the gateway does with a restore-service 500 (RestoreProxyService.call).
    throw new HttpException({ statusCode: 500, message: 'qemu-storage-daemon exited' }, 500);
  }

  @Get('client')
  client(): never {
    throw new BadRequestException('backup_id must be a UUID');
  }
}

describe('ServerErrorFilter: every 5xx is logged with its request and cause', () => {
  let app: INestApplication;
  const lines: string[] = [];

  beforeAll(async () => {
    const mod = await Test.createTestingModule({
      controllers: [FailingController],
      providers: [{ provide: APP_FILTER, useClass: ServerErrorFilter }],
    }).compile();
    app = mod.createNestApplication({ logger: false });
    await app.init();
  });
  afterAll(() => app.close());
  beforeEach(() => {
    lines.length = 0;
    jest.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => void lines.push(String(message)));
  });
  afterEach(() => jest.restoreAllMocks());

  it('an unknown error: 500 with an error id, and a log line with method, path, the error and its cause under that id', async () => {
    const r = await request(app.getHttpServer()).get('/crash?x=1');
    expect(r.status).toBe(500);
    expect(r.body.error_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.body.message).toContain(r.body.error_id);
    expect(r.body.message).not.toContain('restore_mounts');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`GET /crash?x=1 answered 500 [error ${r.body.error_id}]`);
    expect(lines[0]).toMatch(/Error: restore_mounts insert failed <- caused by: Error ER_LOCK_WAIT_TIMEOUT: Lock wait timeout exceeded/);
  });

  it('a 500 passed on from another service (an HttpException, which Nest does not log) is logged and answered as it was', async () => {
    const r = await request(app.getHttpServer()).get('/passed-on');
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ statusCode: 500, message: 'qemu-storage-daemon exited' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/GET \/passed-on answered 500 .*qemu-storage-daemon exited/);
  });

  it("a 4xx is the client's: answered, not logged", async () => {
    const r = await request(app.getHttpServer()).get('/client');
    expect(r.status).toBe(400);
    expect(lines).toEqual([]);
  });
});
