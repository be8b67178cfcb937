import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * The only place in the code base where external commands are started.
 * Commands are always an executable plus an argument array (never a shell
 * string), so names that come from users cannot be interpreted by a shell.
 */

export interface RunOptions {
  /** Kill the command (SIGTERM, then SIGKILL after 2 s) after this many ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Exit codes that are not an error (default: only 0). */
  okExitCodes?: readonly number[];
  /** Keep at most this many bytes of stdout (default 64 MiB). */
  maxStdoutBytes?: number;
}

export interface RunResult {
  command: string;
  args: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

const STDERR_KEEP = 16 * 1024;

export class CommandError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly killSignal: NodeJS.Signals | null,
    readonly stderr: string,
    readonly stdout: string,
    readonly timedOut: boolean,
    readonly aborted: boolean,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Render a command line for messages (quoted so that spaces stay visible). */
export function formatCommand(command: string, args: readonly string[]): string {
  return [command, ...args]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

function tail(text: string, max: number): string {
  return text.length > max ? `…${text.slice(text.length - max)}` : text;
}

/** Run a command to completion and collect its output. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const okCodes = options.okExitCodes ?? [0];
  const maxStdout = options.maxStdoutBytes ?? 64 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(
        new CommandError(
          `${formatCommand(command, args)} was not started: aborted`,
          command, args, null, null, '', '', false, true,
        ),
      );
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(command, [...args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['pipe', 'pipe', 'pipe'],
      } satisfies SpawnOptions);
    } catch (err) {
      reject(err);
      return;
    }
    const out: Buffer[] = [];
    let outBytes = 0;
    let errText = '';
    let timedOut = false;
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const kill = () => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 2000);
      killTimer.unref();
    };
    const timer = options.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          kill();
        }, options.timeoutMs)
      : undefined;
    const onAbort = () => {
      aborted = true;
      kill();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout?.on('data', (chunk: Buffer) => {
      if (outBytes < maxStdout) {
        out.push(chunk);
        outBytes += chunk.length;
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      errText = tail(errText + chunk.toString('utf8'), STDERR_KEEP);
    });
    child.stdin?.on('error', () => undefined);
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();

    const finish = () => {
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      finish();
      const hint = err.code === 'ENOENT' ? ` (is ${command} installed and on PATH?)` : '';
      reject(
        new CommandError(
          `${formatCommand(command, args)} could not start: ${err.message}${hint}`,
          command, args, null, null, errText, '', false, false,
        ),
      );
    });
    child.on('close', (code, sig) => {
      finish();
      const stdout = Buffer.concat(out).toString('utf8');
      const result: RunResult = {
        command,
        args,
        exitCode: code ?? -1,
        stdout,
        stderr: errText,
        durationMs: Date.now() - started,
      };
      if (!timedOut && !aborted && code !== null && okCodes.includes(code)) {
        resolve(result);
        return;
      }
      const why = timedOut
        ? `timed out after ${options.timeoutMs} ms`
        : aborted
          ? 'was aborted'
          : sig
            ? `was killed by ${sig}`
            : `exited with code ${code}`;
      const detail = errText.trim() ? `: ${errText.trim()}` : '';
      reject(
        new CommandError(
          `${formatCommand(command, args)} ${why}${detail}`,
          command, args, code, sig, errText, stdout, timedOut, aborted,
        ),
      );
    });
  });
}

/** Run a command whose stdout is JSON and parse it. */
export async function runJson<T>(command: string, args: readonly string[], options?: RunOptions): Promise<T> {
  const result = await run(command, args, options);
  try {
    return JSON.parse(result.stdout) as T;
  } catch (err) {
    throw new CommandError(
      `${formatCommand(command, args)} printed output that is not JSON: ${(err as Error).message}`,
      command, args, result.exitCode, null, result.stderr, result.stdout, false, false,
    );
  }
}

export interface DaemonOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Start the daemon in its own process group (so it survives our signals). */
  detached?: boolean;
  /** Called for each stderr/stdout line (for readiness detection or logs). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** A long-running child process (qemu-storage-daemon, qemu-nbd, nbd-server). */
export class Daemon {
  private stderrTail = '';
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly child: ChildProcess,
    onLine?: DaemonOptions['onLine'],
  ) {
    const lineSplitter = (stream: 'stdout' | 'stderr') => {
      let partial = '';
      return (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        if (stream === 'stderr') this.stderrTail = tail(this.stderrTail + text, STDERR_KEEP);
        if (!onLine) return;
        partial += text;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) onLine(l, stream);
      };
    };
    child.stdout?.on('data', lineSplitter('stdout'));
    child.stderr?.on('data', lineSplitter('stderr'));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      child.on('error', () => {
        this.exitInfo = this.exitInfo ?? { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
  }

  static start(command: string, args: readonly string[], options: DaemonOptions = {}): Promise<Daemon> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, [...args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: options.detached ?? false,
      });
      const daemon = new Daemon(command, args, child, options.onLine);
      child.once('spawn', () => resolve(daemon));
      child.once('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'ENOENT' ? ` (is ${command} installed and on PATH?)` : '';
        reject(new CommandError(
          `${formatCommand(command, args)} could not start: ${err.message}${hint}`,
          command, args, null, null, '', '', false, false,
        ));
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  get stderr(): string {
    return this.stderrTail;
  }

  describe(): string {
    return formatCommand(this.command, this.args);
  }

  /** An error for a daemon that stopped unexpectedly, with its stderr. */
  exitError(context: string): CommandError {
    const info = this.exitInfo;
    const why = info ? (info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`) : 'is running';
    return new CommandError(
      `${context}: ${this.describe()} ${why}${this.stderrTail.trim() ? `: ${this.stderrTail.trim()}` : ''}`,
      this.command, this.args, info?.code ?? null, info?.signal ?? null, this.stderrTail, '', false, false,
    );
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Wait until a predicate holds, polling; throws with the message on timeout. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 10000, intervalMs = 50, message = 'condition' }: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
