import { exitOnSignals } from './shutdown';

describe('exitOnSignals', () => {
  let exit: jest.SpyInstance;
  beforeEach(() => {
    exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
  });
  afterEach(() => {
    exit.mockRestore();
    process.removeAllListeners('SIGTERM');
    process.removeAllListeners('SIGINT');
  });

  it('closes once and exits 0', async () => {
    const lines: string[] = [];
    const close = jest.fn().mockResolvedValue(undefined);
    exitOnSignals('svc', close, { log: (l) => lines.push(l) });
    process.emit('SIGTERM', 'SIGTERM');
    process.emit('SIGINT', 'SIGINT');
    await new Promise((r) => setImmediate(r));
    expect(close).toHaveBeenCalledTimes(1);
    expect(exit).toHaveBeenCalledWith(0);
    expect(lines).toEqual(['svc: SIGTERM received, shutting down', 'svc: stopped']);
  });

  it('exits 1 when closing fails or hangs', async () => {
    const lines: string[] = [];
    exitOnSignals('svc', () => Promise.reject(new Error('boom')), { log: (l) => lines.push(l) });
    process.emit('SIGTERM', 'SIGTERM');
    await new Promise((r) => setImmediate(r));
    expect(exit).toHaveBeenCalledWith(1);
    expect(lines[1]).toContain('boom');
    process.removeAllListeners('SIGTERM');
    exit.mockClear();
    exitOnSignals('slow', () => new Promise(() => undefined), { graceMs: 20, log: (l) => lines.push(l) });
    process.emit('SIGTERM', 'SIGTERM');
    await new Promise((r) => setTimeout(r, 60));
    expect(exit).toHaveBeenCalledWith(1);
    expect(lines.at(-1)).toContain('longer than 20 ms');
  });
});
