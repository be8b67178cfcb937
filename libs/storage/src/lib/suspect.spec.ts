import { chainSuspicion, suspectMarkOf, suspectMetadata } from './suspect';
import type { RestorePoint } from './repository';

const point = (id: string, extra: Partial<RestorePoint> = {}): RestorePoint =>
  ({ id, imageName: `${id}.qcow2`, metadata: {}, lastVerification: null, ...extra }) as RestorePoint;

describe('suspect restore points', () => {
  it('round-trips the mark through sidecar metadata', () => {
    const md = suspectMetadata('CBT audit: 3 of 16 blocks differ', new Date('2026-12-01T00:00:00Z'));
    expect(suspectMarkOf({ metadata: md })).toEqual({ reason: 'CBT audit: 3 of 16 blocks differ', at: '2026-12-01T00:00:00.000Z' });
    expect(suspectMarkOf({ metadata: {} })).toBeNull();
    expect(suspectMarkOf({ metadata: { suspect: { at: 'x' } } })).toBeNull();
  });

  it('names the oldest suspect or damaged point of a chain', () => {
    expect(chainSuspicion([point('a'), point('b')])).toBeNull();
    const bad = point('b', { lastVerification: { at: 't', ok: false, checkClean: true, checksumMatches: false, problems: [] } });
    expect(chainSuspicion([point('a'), bad, point('c', { metadata: suspectMetadata('later') })])).toMatchObject({
      restorePointId: 'b',
      damaged: true,
      mark: { reason: 'verification of b.qcow2 failed: its data no longer matches its checksum' },
    });
    expect(chainSuspicion([point('a', { metadata: suspectMetadata('cbt') }), bad])).toMatchObject({
      restorePointId: 'a',
      damaged: false,
      mark: { reason: 'cbt' },
    });
  });
});
