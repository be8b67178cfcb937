import { chooseType, selectVms, unmatchedNames, windowDeadline } from './policy-rules';

const vms = [
  { contextId: 'c1', vmName: 'web-1' },
  { contextId: 'c2', vmName: 'web-2' },
  { contextId: 'c3', vmName: 'db-1' },
  { contextId: 'c4', vmName: 'web.x' },
];

describe('policy rules', () => {
  it('selects by pattern, explicit name or id, and folder members, once each', () => {
    expect(selectVms(vms, { namePattern: 'web-?' }).map((v) => v.contextId)).toEqual(['c1', 'c2']);
    expect(selectVms(vms, { namePattern: 'web*' }).map((v) => v.contextId)).toEqual(['c1', 'c2', 'c4']);
    expect(selectVms(vms, { namePattern: 'web.*' }).map((v) => v.contextId)).toEqual(['c4']);
    expect(selectVms(vms, { vmNames: ['db-1', 'c1'], namePattern: 'web-1' }).map((v) => v.contextId)).toEqual(['c1', 'c3']);
    expect(selectVms(vms, { folder: 'prod' }, new Set(['c2'])).map((v) => v.contextId)).toEqual(['c2']);
    expect(selectVms(vms, {})).toEqual([]);
    expect(unmatchedNames(vms, { vmNames: ['db-1', 'gone'] })).toEqual(['gone']);
  });

  it('chooses full, incremental or a synthetic full by the rules', () => {
    const now = new Date('2026-12-10T00:00:00Z');
    const rules = { fullEveryDays: 7, fullAfterIncrementals: null, syntheticFull: false };
    expect(chooseType(rules, { lastFullAt: null, incrementalsSinceFull: 0 }, now)).toMatchObject({ type: 'full', synthesize: false });
    expect(chooseType(rules, { lastFullAt: new Date('2026-12-05T00:00:00Z'), incrementalsSinceFull: 9 }, now)).toMatchObject({ type: 'incremental' });
    expect(chooseType(rules, { lastFullAt: new Date('2026-12-03T00:00:00Z'), incrementalsSinceFull: 1 }, now)).toMatchObject({
      type: 'full',
      reason: expect.stringMatching(/7\.0 days/),
    });
    const byCount = { fullEveryDays: null, fullAfterIncrementals: 3, syntheticFull: true };
    expect(chooseType(byCount, { lastFullAt: now, incrementalsSinceFull: 2 }, now)).toMatchObject({ type: 'incremental', synthesize: false });
    expect(chooseType(byCount, { lastFullAt: now, incrementalsSinceFull: 3 }, now)).toMatchObject({ type: 'incremental', synthesize: true });
    expect(
      chooseType({ fullEveryDays: null, fullAfterIncrementals: null, syntheticFull: false }, { lastFullAt: new Date(0), incrementalsSinceFull: 500 }, now).type,
    ).toBe('incremental');
  });

  it('ends the start window at the first HH:MM after the slot, in the policy zone', () => {
    // 22:00 in Berlin (UTC+1 in December) = 21:00Z; 06:00 next morning = 05:00Z.
    expect(windowDeadline(new Date('2026-12-02T21:00:00Z'), '06:00', 'Europe/Berlin')?.toISOString()).toBe('2026-12-03T05:00:59.000Z');
    expect(windowDeadline(new Date('2026-12-02T10:15:30Z'), '11:00', 'UTC')?.toISOString()).toBe('2026-12-02T11:00:59.000Z');
    expect(windowDeadline(new Date('2026-12-02T11:00:10Z'), '11:00', 'UTC')?.toISOString()).toBe('2026-12-02T11:00:59.000Z');
    expect(windowDeadline(new Date(), null, 'UTC')).toBeNull();
    expect(() => windowDeadline(new Date(), '25:00', 'UTC')).toThrow(/HH:MM/);
  });
});
