import type { Result, ResultPromise } from 'execa';

/**
 * The only place in the code base where external commands are started
 * (on execa). Commands are always an executable plus an argument array
 * (never a shell string), so names that come from users cannot be
 * interpreted by a shell.
 */

type ExecaResult = Result<{ reject: false; stripFinalNewline: false }>;
/** A running daemon's process as execa returns it (a ChildProcess with a result promise). */
export type DaemonProcess = ResultPromise<typeof DAEMON_IO>;

/** Daemons: no stdin, output read line by line (not buffered), stop() decides when SIGKILL follows SIGTERM. */
const DAEMON_IO = { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false, forceKillAfterDelay: false } as const;

/**
 * execa 9 is an ES module. It is imported on first use: tsx (tests, scripts)
 * loads a dynamic import through Node's ES module loader, where a require()
 * of it would be compiled to CommonJS and then miss its dependencies'
 * import-only exports; the built services (webpack) and Jest (see
 * tools/jest/execa.cjs) get it through Node's require(esm).
 */
let execaModule: Promise<typeof import('execa')> | undefined;
function loadExeca(): Promise<typeof import('execa')> {
  execaModule ??= import('execa');
  return execaModule;
}

/** SIGTERM first; SIGKILL this long after a timeout or an abort. */
const KILL_GRACE_MS = 2000;

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
  return [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function tail(text: string, max: number): string {
  return text.length > max ? `…${text.slice(text.length - max)}` : text;
}

/** Run a command to completion and collect its output (execa underneath). */
export async function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  if (options.signal?.aborted) {
    throw new CommandError(`${formatCommand(command, args)} was not started: aborted`, command, args, null, null, '', '', false, true);
  }
  const { execa } = await loadExeca();
  const result = await execa(command, args, {
    ...environment(options),
    input: options.input ?? '',
    timeout: options.timeoutMs,
    cancelSignal: options.signal,
    forceKillAfterDelay: KILL_GRACE_MS,
    maxBuffer: { stdout: options.maxStdoutBytes ?? 64 * 1024 * 1024, stderr: 64 * 1024 * 1024 },
    stripFinalNewline: false,
    reject: false,
  });
  return toResult(command, args, options, result);
}

/** The child's environment: options.env replaces ours entirely, as spawn does; default ours. */
function environment(options: { cwd?: string; env?: NodeJS.ProcessEnv }) {
  return { cwd: options.cwd, env: options.env, extendEnv: options.env === undefined, cleanup: false } as const;
}

function toResult(command: string, args: readonly string[], options: RunOptions, r: ExecaResult): RunResult {
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  const stderr = tail(typeof r.stderr === 'string' ? r.stderr : '', STDERR_KEEP);
  const exitCode = r.exitCode ?? null;
  const okCodes = options.okExitCodes ?? [0];
  const spawned = r.exitCode !== undefined || r.signal !== undefined;
  if (!spawned && !r.timedOut && !r.isCanceled) {
    const hint = r.code === 'ENOENT' ? ` (is ${command} installed and on PATH?)` : '';
    const why = r.cause instanceof Error ? r.cause.message : (r.originalMessage ?? r.shortMessage ?? 'unknown error');
    throw new CommandError(`${formatCommand(command, args)} could not start: ${why}${hint}`, command, args, null, null, stderr, '', false, false);
  }
  if (!r.timedOut && !r.isCanceled && !r.isMaxBuffer && exitCode !== null && okCodes.includes(exitCode)) {
    return { command, args, exitCode, stdout, stderr, durationMs: Math.round(r.durationMs) };
  }
  const why = r.timedOut
    ? `timed out after ${options.timeoutMs} ms`
    : r.isCanceled
      ? 'was aborted'
      : r.isMaxBuffer
        ? `printed more than ${options.maxStdoutBytes ?? 64 * 1024 * 1024} bytes and was stopped`
        : r.signal
          ? `was killed by ${r.signal}`
          : `exited with code ${exitCode}`;
  const detail = stderr.trim() ? `: ${stderr.trim()}` : '';
  throw new CommandError(
    `${formatCommand(command, args)} ${why}${detail}`,
    command,
    args,
    exitCode,
    (r.signal as NodeJS.Signals | undefined) ?? null,
    stderr,
    stdout,
    r.timedOut,
    r.isCanceled,
  );
}

/** Run a command whose stdout is JSON and parse it. */
export async function runJson<T>(command: string, args: readonly string[], options?: RunOptions): Promise<T> {
  const result = await run(command, args, options);
  try {
    return JSON.parse(result.stdout) as T;
  } catch (err) {
    throw new CommandError(
      `${formatCommand(command, args)} printed output that is not JSON: ${(err as Error).message}`,
      command,
      args,
      result.exitCode,
      null,
      result.stderr,
      result.stdout,
      false,
      false,
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
    readonly child: DaemonProcess,
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

  static async start(command: string, args: readonly string[], options: DaemonOptions = {}): Promise<Daemon> {
    const { execa } = await loadExeca();
    const child = execa(command, args, { ...environment(options), ...DAEMON_IO, detached: options.detached ?? false });
    const daemon = new Daemon(command, args, child, options.onLine);
    const started = await Promise.race([new Promise<true>((resolve) => child.once('spawn', () => resolve(true))), child.then((r) => r)]);
    if (started !== true && started.exitCode === undefined && started.signal === undefined) {
      const hint = started.code === 'ENOENT' ? ` (is ${command} installed and on PATH?)` : '';
      const why = started.cause instanceof Error ? started.cause.message : (started.shortMessage ?? 'unknown error');
      throw new CommandError(`${formatCommand(command, args)} could not start: ${why}${hint}`, command, args, null, null, '', '', false, false);
    }
    return daemon;
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
      this.command,
      this.args,
      info?.code ?? null,
      info?.signal ?? null,
      this.stderrTail,
      '',
      false,
      false,
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
