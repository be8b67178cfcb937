import { EventEmitter } from 'node:events';
import { exitOnSignals } from './shutdown';

/** A private signal source: the test never touches the real process's handlers. */
function setup(close: () => Promise<void>, graceMs?: number) {
  const signals = new EventEmitter();
  const lines: string[] = [];
  const exits: number[] = [];
  exitOnSignals('svc', close, { signals, graceMs, log: (l) => lines.push(l), exit: (c) => exits.push(c) });
  return { signals, lines, exits };
}

describe('exitOnSignals', () => {
  it('closes once and exits 0', async () => {
    const close = jest.fn().mockResolvedValue(undefined);
    const { signals, lines, exits } = setup(close);
    signals.emit('SIGTERM', 'SIGTERM');
    signals.emit('SIGINT', 'SIGINT');
    await new Promise((r) => setImmediate(r));
    expect(close).toHaveBeenCalledTimes(1);
    expect(exits).toEqual([0]);
    expect(lines).toEqual(['svc: SIGTERM received, shutting down', 'svc: stopped']);
  });

  it('exits 1 when closing fails', async () => {
    const { signals, lines, exits } = setup(() => Promise.reject(new Error('boom')));
    signals.emit('SIGTERM', 'SIGTERM');
    await new Promise((r) => setImmediate(r));
    expect(exits).toEqual([1]);
    expect(lines[1]).toContain('boom');
  });

  it('exits 1 when closing hangs past the grace time', async () => {
    const { signals, lines, exits } = setup(() => new Promise(() => undefined), 20);
    signals.emit('SIGINT', 'SIGINT');
    await new Promise((r) => setTimeout(r, 60));
    expect(exits).toEqual([1]);
    expect(lines.at(-1)).toContain('longer than 20 ms');
  });
});
