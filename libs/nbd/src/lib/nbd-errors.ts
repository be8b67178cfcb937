import { COMMAND_NAMES, NBD_ERRORS } from './nbd-protocol';

/** Where an error happened: enough for an operator to find the disk and byte. */
export interface NbdErrorContext {
  /** Human-readable server address (URI or host:port / socket path). */
  server: string;
  exportName: string;
  command?: string;
  offset?: number;
  length?: number;
}

function where(ctx: NbdErrorContext): string {
  const parts = [`server ${ctx.server}`, `export "${ctx.exportName}"`];
  if (ctx.offset !== undefined) parts.push(`offset ${ctx.offset}`);
  if (ctx.length !== undefined) parts.push(`length ${ctx.length}`);
  return parts.join(', ');
}

/** Base class: every error of this lib names server and export. */
export class NbdError extends Error {
  readonly server: string;
  readonly exportName: string;
  readonly command?: string;
  readonly offset?: number;
  readonly length?: number;
  constructor(message: string, ctx: NbdErrorContext, options?: { cause?: unknown }) {
    super(`${message} (${where(ctx)})`, options);
    this.name = 'NbdError';
    this.server = ctx.server;
    this.exportName = ctx.exportName;
    this.command = ctx.command;
    this.offset = ctx.offset;
    this.length = ctx.length;
  }
}

/** The server answered a command with an error (EIO, ENOSPC, ...). Not retried. */
export class NbdCommandError extends NbdError {
  readonly errno: number;
  readonly errnoName: string;
  readonly serverMessage?: string;
  constructor(errno: number, ctx: NbdErrorContext, serverMessage?: string) {
    const [name, text] = NBD_ERRORS[errno] ?? [`E#${errno}`, 'unknown NBD error'];
    super(`NBD ${ctx.command ?? 'command'} failed: ${name} (${text})${serverMessage ? `: ${serverMessage}` : ''}`, ctx);
    this.name = 'NbdCommandError';
    this.errno = errno;
    this.errnoName = name;
    this.serverMessage = serverMessage;
  }
}

/**
 * The connection failed or dropped (socket error, EOF, protocol violation).
 * Requests in flight are lost; a copier may reconnect and retry them.
 */
export class NbdConnectionError extends NbdError {
  constructor(message: string, ctx: NbdErrorContext, options?: { cause?: unknown }) {
    super(message, ctx, options);
    this.name = 'NbdConnectionError';
  }
}

/** Negotiation failed (unknown export, TLS required, option refused...). Not retried. */
export class NbdHandshakeError extends NbdError {
  constructor(message: string, ctx: NbdErrorContext) {
    super(message, ctx);
    this.name = 'NbdHandshakeError';
  }
}

export function commandName(type: number): string {
  return COMMAND_NAMES[type] ?? `CMD#${type}`;
}

/** ESHUTDOWN: the server is going away (restart); a reconnect may cure it. */
const NBD_ESHUTDOWN = 108;

/** True for failures a reconnect can cure: a dropped connection or a server shutting down. */
export function isRetryable(err: unknown): boolean {
  return err instanceof NbdConnectionError || (err instanceof NbdCommandError && err.errno === NBD_ESHUTDOWN);
}
