import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@sendense/process';

/**
 * docs/api.md is generated from the gateway's OpenAPI document
 * (libs/api-client/openapi.json, kept current by `npm run api:generate -- --check`).
 * This is the CI check that the page is current, and that the check fails
 * when an endpoint changes without regenerating the page.
 */
const ROOT = join(__dirname, '..', '..');
const DOC = join(ROOT, 'libs/api-client/openapi.json');
const docsApi = (...args: string[]) =>
  run(join(ROOT, 'node_modules/.bin/tsx'), ['--tsconfig', join(ROOT, 'tsconfig.base.json'), join(ROOT, 'scripts/docs-api.ts'), ...args], {
    cwd: ROOT,
    okExitCodes: [0, 1],
    timeoutMs: 60_000,
  });

let work: string;
beforeAll(() => (work = mkdtempSync(join(tmpdir(), 'sendense-docs-api-'))));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('docs/api.md', () => {
  it('is what npm run docs:api makes of the OpenAPI document', async () => {
    const r = await docsApi('--check');
    expect({ exit: r.exitCode, stderr: r.stderr.trim() }).toEqual({ exit: 0, stderr: '' });
  }, 70_000);

  it('lists every operation of the document', () => {
    const doc = JSON.parse(readFileSync(DOC, 'utf8')) as { paths: Record<string, Record<string, unknown>> };
    const page = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))) {
        expect(page).toContain(`### ${method.toUpperCase()} ${path}\n`);
      }
    }
  });

  it('fails the check when an endpoint changes without regenerating', async () => {
    const same = join(work, 'same.json');
    writeFileSync(same, readFileSync(DOC, 'utf8'));
    expect((await docsApi('--check', '--from', same)).exitCode).toBe(0);

    const doc = JSON.parse(readFileSync(DOC, 'utf8')) as { paths: Record<string, unknown> };
    doc.paths['/api/v1/new-thing'] = { get: { summary: 'A new endpoint', tags: ['new'], responses: { 200: { description: 'ok' } } } };
    const changed = join(work, 'openapi.json');
    writeFileSync(changed, JSON.stringify(doc));
    const r = await docsApi('--check', '--from', changed);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('docs/api.md is stale');
    expect(r.stderr).toContain('npm run docs:api');
  }, 70_000);
});
