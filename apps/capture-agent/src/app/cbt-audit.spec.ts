import { pickUnchangedBlocks } from './cbt-audit';

describe('pickUnchangedBlocks', () => {
  const B = 65536;
  it('picks only whole blocks that no changed extent touches, distinct and sorted', () => {
    const changed = [
      { offset: 3 * B + 100, length: 10 }, // touches block 3 only
      { offset: 10 * B, length: 5 * B }, // blocks 10..14
      { offset: 12 * B, length: 4 * B }, // overlaps the previous: 12..15
    ];
    let seed = 1;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const picked = pickUnchangedBlocks(changed, 20 * B + 123, 100, B, random);
    const touched = new Set([3, 10, 11, 12, 13, 14, 15]);
    expect(picked.map((o) => o / B).sort((a, b) => a - b)).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19]);
    expect(picked.every((o) => !touched.has(o / B))).toBe(true);
  });

  it('gives nothing when everything changed or the disk is smaller than a block', () => {
    expect(pickUnchangedBlocks([{ offset: 0, length: 4 * B }], 4 * B, 10, B)).toEqual([]);
    expect(pickUnchangedBlocks([], B - 1, 10, B)).toEqual([]);
    expect(pickUnchangedBlocks([], 8 * B, 3, B)).toHaveLength(3);
  });
});
