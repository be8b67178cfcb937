import { CommandError, Daemon, formatCommand, run, runJson, waitFor } from './process-runner';

describe('run', () => {
  it('passes arguments without a shell', async () => {
    const r = await run('printf', ['%s|', 'a b', '$(echo x)', ';rm -rf /']);
    expect(r.stdout).toBe('a b|$(echo x)|;rm -rf /|');
    expect(r.exitCode).toBe(0);
  });

  it('puts the command and its stderr into the error', async () => {
    await expect(run('sh', ['-c', 'echo boom >&2; exit 3'])).rejects.toMatchObject({
      name: 'CommandError',
      exitCode: 3,
      message: expect.stringContaining('exited with code 3: boom'),
    });
  });

  it('accepts listed exit codes', async () => {
    const r = await run('sh', ['-c', 'exit 2'], { okExitCodes: [0, 2] });
    expect(r.exitCode).toBe(2);
  });

  it('times out and kills', async () => {
    const started = Date.now();
    const err = (await run('sleep', ['5'], { timeoutMs: 100 }).catch((e) => e)) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.timedOut).toBe(true);
    expect(err.message).toContain('timed out after 100 ms');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('aborts on signal, also before start', async () => {
    const ac = new AbortController();
    const p = run('sleep', ['5'], { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toMatchObject({ aborted: true });
    await expect(run('true', [], { signal: ac.signal })).rejects.toMatchObject({ aborted: true });
  });

  it('says when the executable is missing', async () => {
    await expect(run('no-such-binary-xyz', [])).rejects.toThrow(/could not start.*installed/);
  });

  it('feeds stdin and parses JSON', async () => {
    expect(await runJson<{ a: number }>('cat', [], { input: '{"a":1}' })).toEqual({ a: 1 });
    await expect(runJson('echo', ['nope'])).rejects.toThrow(/not JSON/);
  });

  it('quotes for display', () => {
    expect(formatCommand('qemu-img', ['info', 'a b.qcow2'])).toBe("qemu-img info 'a b.qcow2'");
  });
});

describe('Daemon', () => {
  it('starts, reports lines and stops', async () => {
    const lines: string[] = [];
    const d = await Daemon.start('sh', ['-c', 'echo ready; echo warn >&2; exec sleep 30'], {
      onLine: (l) => lines.push(l),
    });
    await waitFor(() => lines.includes('ready'), { message: 'ready line' });
    expect(d.running).toBe(true);
    await d.stop(1000);
    expect(d.running).toBe(false);
    expect(d.stderr).toContain('warn');
    expect(d.exitError('x').message).toContain('killed by SIGTERM');
  });

  it('rejects a missing executable', async () => {
    await expect(Daemon.start('no-such-binary-xyz', [])).rejects.toThrow(/could not start/);
  });

  it('waitFor times out with its message', async () => {
    await expect(waitFor(() => false, { timeoutMs: 50, message: 'never' })).rejects.toThrow(/never/);
  });
});
