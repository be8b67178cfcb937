import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Daemon } from '@sendense/process';
import { LocalQcow2Repository } from './local-repository';
import { CONSOLIDATION_STEPS, type ConsolidationStep } from './consolidation-journal';
import { backup, DiskModel, expectAllReadBack, MiB, tempDir, type Backup } from '../../test/helpers';

jest.setTimeout(180_000);

const WORKSPACE = path.resolve(__dirname, '../../../..');
const CHILD = path.resolve(__dirname, '../../test/consolidate-child.ts');

async function runChild(root: string, fromId: string, toId: string, step: ConsolidationStep, nth = 1) {
  let out = '';
  // node --import tsx (not the tsx wrapper) so the killed process is the one we watch.
  const d = await Daemon.start(process.execPath, ['--import', 'tsx', CHILD, root, fromId, toId, step, String(nth)], {
    cwd: WORKSPACE,
    env: { ...process.env, TSX_TSCONFIG_PATH: path.join(WORKSPACE, 'tsconfig.base.json') },
    onLine: (l) => (out += l + '\n'),
  });
  const exit = await d.exited;
  return { ...exit, out, stderr: d.stderr };
}

/**
 * Kill a consolidation (a real process, SIGKILL) at every step of the
 * protocol, then restart: every restore point must read back exactly as
 * before, both before recovery (what other processes see meanwhile) and
 * after recovery (roll back before the commit point, roll forward after).
 */
describe('consolidation killed mid-way (SIGKILL at every step)', () => {
  let template: string;
  let model: DiskModel;
  let chain: Backup[];
  const roots: string[] = [];

  beforeAll(async () => {
    template = await tempDir('crash-template');
    model = new DiskModel(await tempDir('crash-refs'));
    const repo = await LocalQcow2Repository.open({ root: template, space: { marginBytes: 0 } });
    chain = [await backup(repo, model, { type: 'full', writes: [{ pattern: 0x10, off: 0, len: 4 * MiB }] })];
    const writes = [
      [{ pattern: 0x20, off: 1 * MiB, len: 512 * 1024 }],
      [
        { pattern: null, off: 2 * MiB, len: 256 * 1024 },
        { pattern: 0x30, off: 6 * MiB, len: 128 * 1024 },
      ],
      [{ pattern: 0x40, off: 1 * MiB + 256 * 1024, len: 512 * 1024 }],
      [{ pattern: 0x50, off: 3 * MiB, len: 64 * 1024 }],
    ];
    for (const w of writes) chain.push(await backup(repo, model, { type: 'incremental', parent: chain[chain.length - 1], writes: w }));
  });

  afterAll(async () => {
    for (const r of [template, model.refDir, ...roots]) await fsp.rm(r, { recursive: true, force: true });
  });

  async function freshCopy(): Promise<string> {
    const root = await tempDir('crash');
    roots.push(root);
    await fsp.cp(template, root, { recursive: true });
    return root;
  }

  const ids = () => chain.map((b) => b.record.id);

  async function killAndRecover(fromIdx: number, toIdx: number, step: ConsolidationStep, nth = 1) {
    const root = await freshCopy();
    const r = await runChild(root, ids()[fromIdx], ids()[toIdx], step, nth);
    expect({ signal: r.signal, out: r.out.trim(), stderr: r.stderr }).toMatchObject({ signal: 'SIGKILL', out: `killing myself at ${step}` });

    // Meanwhile (before anyone recovers): whatever is listed reads back correctly.
    const observer = new LocalQcow2Repository({ root });
    expect(await expectAllReadBack(observer, model)).toEqual([]);

    // Restart: open() recovers the interrupted consolidation.
    const repo = await LocalQcow2Repository.open({ root });
    const listed = (await repo.list()).map((x) => x.id);
    const committedPoint = CONSOLIDATION_STEPS.indexOf(step) >= CONSOLIDATION_STEPS.indexOf('journal-built');
    const expected = committedPoint ? ids().filter((_, i) => i < fromIdx || i >= toIdx) : ids();
    expect(listed).toEqual(expected);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    // Sidecars match the images (checksums, sizes, backing names) for the survivor and its child.
    for (const id of [ids()[toIdx], ids()[toIdx + 1]]) expect((await repo.verify(id)).ok).toBe(true);
    const dir = path.join(root, 'vm-1', 'disk-0');
    expect((await fsp.readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
    const report = await repo.reconcile();
    expect(report.entries).toEqual([]);
    return repo;
  }

  describe.each(CONSOLIDATION_STEPS.map((s) => [s]))('merging into the full, killed at %s', (step) => {
    it('loses no restore point and the chain stays usable', async () => {
      const repo = await killAndRecover(0, 2, step);
      if (step !== 'renamed' && step !== 'temp-built') return;
      // The chain can be extended afterwards.
      const top = (await repo.list()).at(-1);
      const ref = top && model.refs.get(top.id);
      if (!top || !ref) throw new Error('no restore point left');
      const next = await backup(repo, model, {
        type: 'incremental',
        parent: { record: top, content: await fsp.readFile(ref) },
        writes: [{ pattern: 0x60, off: 0, len: 64 * 1024 }],
      });
      expect(await expectAllReadBack(repo, model, [next.record.id])).toEqual([]);
    });
  });

  describe.each((['temp-copied', 'temp-built', 'renamed', 'removed-one'] as ConsolidationStep[]).map((s) => [s]))(
    'merging a range in the middle, killed at %s',
    (step) => {
      it('loses no restore point', async () => {
        await killAndRecover(1, 3, step, step === 'removed-one' ? 2 : 1);
      });
    },
  );
});
