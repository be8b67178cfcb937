import { SecretBox } from './secret-box';

describe('SecretBox', () => {
  it('round-trips and never stores the clear text', () => {
    const box = new SecretBox('k1');
    const sealed = box.seal('vc pässword');
    expect(sealed).not.toContain('pässword');
    expect(box.open(sealed)).toBe('vc pässword');
    expect(box.seal('x')).not.toBe(box.seal('x'));
  });

  it('refuses a wrong key, a tampered value and a missing key', () => {
    const sealed = new SecretBox('k1').seal('secret');
    expect(() => new SecretBox('k2').open(sealed)).toThrow(/SENDENSE_SECRET_KEY differs/);
    const parts = sealed.split(':');
    parts[3] = Buffer.from('other').toString('base64');
    expect(() => new SecretBox('k1').open(parts.join(':'))).toThrow(/cannot be decrypted/);
    expect(() => new SecretBox('k1').open('nope')).toThrow(/unknown format/);
    expect(() => new SecretBox('')).toThrow(/SENDENSE_SECRET_KEY is not set/);
  });
});
