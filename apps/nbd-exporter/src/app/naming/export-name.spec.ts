import { ExporterError } from '../exporter-error';
import { buildExportName, compactTimestamp, MAX_EXPORT_NAME_LENGTH, validateExportName } from './export-name';

const base = { vmContextId: 'vm-42', diskId: 0, type: 'full', timestamp: '20251004T120000' };

describe('buildExportName', () => {
  it('follows backup-{ctx}-disk{n}-{type}-{ts}', () => {
    expect(buildExportName(base)).toBe('backup-vm-42-disk0-full-20251004T120000');
  });

  it('defaults the timestamp to now, compact UTC', () => {
    const now = new Date('2026-03-04T05:06:07.891Z');
    expect(compactTimestamp(now)).toBe('20260304T050607');
    expect(buildExportName({ ...base, timestamp: undefined }, now)).toBe('backup-vm-42-disk0-full-20260304T050607');
  });

  it('shortens a long context id with a hash that keeps names apart and under 64 characters', () => {
    const a = 'ctx-' + 'a'.repeat(60) + '-one';
    const b = 'ctx-' + 'a'.repeat(60) + '-two';
    const na = buildExportName({ ...base, vmContextId: a });
    const nb = buildExportName({ ...base, vmContextId: b });
    expect(na.length).toBeLessThanOrEqual(MAX_EXPORT_NAME_LENGTH);
    expect(na).not.toBe(nb);
    expect(na).toMatch(/^backup-ctx-a+\.[0-9a-f]{6}-disk0-full-20251004T120000$/);
    // Deterministic: the same id always gives the same name.
    expect(buildExportName({ ...base, vmContextId: a })).toBe(na);
  });

  it.each([
    [{ vmContextId: '' }, /vmContextId is missing/],
    [{ vmContextId: 'a b' }, /vmContextId "a b" is not allowed \(contains " "\)/],
    [{ vmContextId: 'a.b' }, /vmContextId "a.b" is not allowed/],
    [{ vmContextId: '-x' }, /vmContextId "-x" is not allowed/],
    [{ vmContextId: 'a$(id)' }, /contains "\$"/],
    [{ diskId: '1 2' }, /diskId "1 2" is not allowed/],
    [{ type: 'FULL' }, /type "FULL" is not allowed/],
    [{ type: 'full\n' }, /type "full\\n" is not allowed/],
    [{ timestamp: '2025-10-04' }, /timestamp "2025-10-04" is not allowed/],
  ])('refuses %j', (over, message) => {
    expect(() => buildExportName({ ...base, ...over } as typeof base)).toThrow(message);
    try {
      buildExportName({ ...base, ...over } as typeof base);
    } catch (err) {
      expect(err).toBeInstanceOf(ExporterError);
      expect((err as ExporterError).code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('validateExportName', () => {
  it.each(['a[b]', 'x=y', '#c', 'a/b', 'a b', 'n\nm', '', 'x'.repeat(64), '.hidden'])('refuses %j', (name) => {
    expect(() => validateExportName(name)).toThrow(ExporterError);
  });
  it('accepts a 63-character name', () => {
    expect(validateExportName('x'.repeat(63))).toHaveLength(63);
  });
});
