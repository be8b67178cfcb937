import { randomUUID } from 'node:crypto';
import { send, startTestGateway, type TestGateway } from './support/gateway';

/**
 * Every operation of the OpenAPI document, called with no key and with a
 * viewer, operator and admin key. Each operation must name its roles
 * (`x-sendense-roles`, written by @Roles()/@Public()); a key outside them
 * gets 403, no key 401, a key inside them anything but 401/403 (and no 500).
 * A new endpoint without a role check fails here.
 */
type Op = { method: string; path: string; roles: string[] | undefined };
const ROLES = ['viewer', 'operator', 'admin'] as const;

describe('authorization matrix over the OpenAPI document', () => {
  let gw: TestGateway;
  let ops: Op[];

  beforeAll(async () => {
    gw = await startTestGateway();
    const doc = await send(gw, 'GET', '/api/docs-json', { key: gw.keys.viewer });
    expect(doc.status).toBe(200);
    const paths = (doc.body as { paths: Record<string, Record<string, Record<string, unknown>>> }).paths;
    ops = Object.entries(paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, roles: op['x-sendense-roles'] as string[] | undefined })),
    );
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
  });

  const concrete = (path: string) => path.replace(/\{[^}]+\}/g, () => randomUUID());

  it('covers the whole API and every operation names its roles', () => {
    expect(ops.length).toBeGreaterThanOrEqual(25);
    const undeclared = ops.filter((o) => !o.roles || o.roles.length === 0).map((o) => `${o.method} ${o.path}`);
    expect(undeclared).toEqual([]);
  });

  it('every route the server has is in the OpenAPI document (nothing hidden from this test)', () => {
    const router = (gw.app.getHttpAdapter().getInstance() as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } }).router;
    const served = router.stack
      .filter((l) => l.route && l.route.path.startsWith('/api/v1'))
      .flatMap((l) => Object.keys(l.route!.methods).map((m) => `${m.toUpperCase()} ${l.route!.path.replace(/:([A-Za-z]+)/g, '{$1}')}`));
    const documented = new Set(ops.map((o) => `${o.method} ${o.path}`));
    expect(served.length).toBeGreaterThanOrEqual(ops.length - 1);
    expect(served.filter((r) => !documented.has(r))).toEqual([]);
  });

  it('pins the sensitive ones (admin-only writes, file content not for viewers, the public health check)', () => {
    const roles = (m: string, p: string) => ops.find((o) => o.method === m && o.path === p)?.roles;
    expect(roles('POST', '/api/v1/apikeys')).toEqual(['admin']);
    expect(roles('POST', '/api/v1/repositories')).toEqual(['admin']);
    expect(roles('POST', '/api/v1/vcenters')).toEqual(['admin']);
    expect(roles('DELETE', '/api/v1/backup/{id}')).toEqual(['admin']);
    for (const p of ['/api/v1/restore/{mountId}/files', '/api/v1/restore/{mountId}/download', '/api/v1/restore/{mountId}/archive']) {
      expect({ p, roles: roles('GET', p) }).toEqual({ p, roles: expect.not.arrayContaining(['viewer']) });
    }
    expect(roles('POST', '/api/v1/vcenters/{id}/import')).toEqual(['admin']);
    expect(roles('DELETE', '/api/v1/repositories/{id}')).toEqual(['admin']);
    expect(roles('GET', '/api/v1/health')).toEqual(['public']);
  });

  it('no key: 401 everywhere but the public operations', async () => {
    const wrong: string[] = [];
    for (const op of ops) {
      const r = await send(gw, op.method, concrete(op.path), op.method === 'GET' || op.method === 'DELETE' ? {} : { body: {} });
      const ok = op.roles?.includes('public') ? r.status !== 401 && r.status !== 403 : r.status === 401;
      if (!ok) wrong.push(`${op.method} ${op.path} → ${r.status}`);
    }
    expect(wrong).toEqual([]);
  }, 120_000);

  it.each(ROLES)(
    '%s key: 403 exactly where the role is not listed',
    async (role) => {
      const wrong: string[] = [];
      for (const op of ops) {
        const r = await send(gw, op.method, concrete(op.path), {
          key: gw.keys[role],
          ...(op.method === 'GET' || op.method === 'DELETE' ? {} : { body: {} }),
        });
        const allowed = op.roles?.includes('public') || op.roles?.includes(role);
        const ok = allowed ? r.status !== 401 && r.status !== 403 && r.status !== 500 : r.status === 403;
        if (!ok) wrong.push(`${op.method} ${op.path} → ${r.status} ${r.text.slice(0, 160)}`);
      }
      expect(wrong).toEqual([]);
    },
    180_000,
  );
});
