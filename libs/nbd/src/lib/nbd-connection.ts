/**
 * One NBD connection: socket, handshake, and the transmission phase with
 * many requests in flight, matched to replies by handle.
 *
 * Hot path notes: replies are parsed from a ByteQueue of the socket chunks
 * Node hands us, and READ payloads are returned as views into those chunks
 * (no copy). Requests issued in the same tick are corked into one writev.
 */
import * as net from 'node:net';
import { ByteQueue } from './byte-queue';
import { NbdCommandError, NbdConnectionError, NbdError, NbdHandshakeError, commandName } from './nbd-errors';
import {
  ExportInfo,
  ExportListing,
  HandshakeFailure,
  HandshakeIo,
  NegotiateOptions,
  listExportsOverIo,
  negotiate,
} from './nbd-handshake';
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_DISC,
  NBD_CMD_READ,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR_OFFSET,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  REQUEST_HEADER_SIZE,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_REPLY_SIZE,
  readU64,
  writeU64,
} from './nbd-protocol';
import { NbdAddress, formatNbdUri } from './nbd-uri';
import { isZero, zeroViews } from './zero';

export interface ConnectOptions extends NegotiateOptions {
  address: NbdAddress;
  /** Give up connecting + negotiating after this long. Default 30 s. */
  connectTimeoutMs?: number;
}

/** A READ reply: the bytes as views (holes are views of a shared zero buffer). */
export interface ReadReply {
  offset: number;
  length: number;
  views: Buffer[];
  /** Every byte is zero (all holes and/or zero data). */
  zero: boolean;
}

/** One extent of a BLOCK_STATUS reply, in the context's own flag space. */
export interface StatusExtent {
  length: number;
  flags: number;
}

/** BLOCK_STATUS reply: context id -> extents starting at the request offset. */
export type StatusReply = Map<number, StatusExtent[]>;

interface Piece {
  offset: number;
  views: Buffer[] | null; // null: hole
  length: number;
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  resolve: (value: never) => void;
  reject: (err: Error) => void;
  pieces?: Piece[];
  status?: StatusReply;
  error?: NbdCommandError;
}

const enum State {
  Header,
  SimpleData,
  StructuredPayload,
}

const NO_PAYLOAD: readonly Buffer[] = [];

export class NbdConnection {
  private readonly q = new ByteQueue();
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  private corked = false;
  private dead: NbdConnectionError | undefined;
  private closing = false;
  private state = State.Header;
  /** Request whose payload we are waiting for. */
  private current: Pending | undefined;
  private currentHandle = 0;
  private chunkFlags = 0;
  private chunkType = 0;
  private chunkLength = 0;
  /** Handshake-phase reader waiting for bytes. */
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private handshaking = true;
  private readonly closed: Promise<void>;
  /** Called once when the connection fails (not on close()). */
  onDead?: (err: NbdConnectionError) => void;
  info!: ExportInfo;

  private constructor(
    private readonly socket: net.Socket,
    readonly address: NbdAddress,
    readonly server: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(`connection error: ${err.message}`, err));
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.fail('server closed the connection'));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  get alive(): boolean {
    return !this.dead && !this.closing;
  }

  get failure(): NbdConnectionError | undefined {
    return this.dead;
  }

  private static async openSocket(address: NbdAddress, timeoutMs: number): Promise<NbdConnection> {
    const server = formatNbdUri(address);
    const socket =
      address.socketPath !== undefined
        ? net.createConnection({ path: address.socketPath })
        : net.createConnection({ host: address.host, port: address.port ?? 10809 });
    const conn = new NbdConnection(socket, address, server);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new NbdConnectionError(`connect timed out after ${timeoutMs} ms`, conn.ctx()));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new NbdConnectionError(`cannot connect: ${err.message}`, conn.ctx(), { cause: err }));
      });
    });
    return conn;
  }

  /** Connect and negotiate the export. */
  static async connect(opts: ConnectOptions): Promise<NbdConnection> {
    const timeoutMs = opts.connectTimeoutMs ?? 30000;
    const conn = await NbdConnection.openSocket(opts.address, timeoutMs);
    const timer = setTimeout(() => conn.socket.destroy(new Error(`handshake timed out after ${timeoutMs} ms`)), timeoutMs);
    try {
      conn.info = await negotiate(conn.io(), opts);
    } catch (err) {
      conn.closing = true;
      conn.socket.destroy();
      throw conn.wrapHandshake(err);
    } finally {
      clearTimeout(timer);
    }
    conn.handshaking = false;
    if (conn.q.length) conn.parse();
    return conn;
  }

  /** OPT_LIST on a fresh connection. */
  static async listExports(address: NbdAddress, timeoutMs = 30000): Promise<ExportListing[]> {
    const conn = await NbdConnection.openSocket(address, timeoutMs);
    try {
      return await listExportsOverIo(conn.io());
    } catch (err) {
      throw conn.wrapHandshake(err);
    } finally {
      conn.closing = true;
      conn.socket.end();
      conn.socket.destroy();
    }
  }

  private wrapHandshake(err: unknown): Error {
    if (err instanceof NbdError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    if (err instanceof HandshakeFailure) return new NbdHandshakeError(msg, this.ctx());
    return new NbdConnectionError(`handshake failed: ${msg}`, this.ctx(), { cause: err });
  }

  private ctx(extra: { command?: string; offset?: number; length?: number } = {}) {
    return { server: this.server, exportName: this.address.exportName, ...extra };
  }

  private io(): HandshakeIo {
    return {
      readExact: (n) =>
        new Promise<Buffer>((resolve, reject) => {
          if (this.dead) return reject(this.dead);
          this.waiter = { n, resolve, reject };
          this.pump();
        }),
      write: (data) => {
        this.socket.write(data);
      },
    };
  }

  private pump(): void {
    const w = this.waiter;
    if (w && this.q.length >= w.n) {
      this.waiter = undefined;
      w.resolve(this.q.take(w.n));
    }
  }

  private onData(chunk: Buffer): void {
    this.q.push(chunk);
    if (this.handshaking) this.pump();
    else this.parse();
  }

  private fail(message: string, cause?: Error): void {
    if (this.dead) return;
    const wasClosing = this.closing;
    const err = new NbdConnectionError(message, this.ctx(), cause ? { cause } : undefined);
    this.dead = err;
    if (this.waiter) {
      this.waiter.reject(err);
      this.waiter = undefined;
    }
    for (const p of this.pending.values()) {
      p.reject(new NbdConnectionError(`${message} with ${commandName(p.type)} in flight`, this.ctx({
        command: commandName(p.type),
        offset: p.offset,
        length: p.length,
      }), cause ? { cause } : undefined));
    }
    this.pending.clear();
    this.socket.destroy();
    if (!wasClosing) this.onDead?.(err);
  }

  /** Protocol violation: the stream cannot be trusted any more. */
  private violation(what: string): void {
    this.fail(`protocol error: ${what}`);
  }

  // ---- transmission: parsing ----

  private parse(): void {
    const q = this.q;
    while (!this.dead) {
      if (this.state === State.Header) {
        if (q.length < 4) return;
        const magic = q.peekUInt32BE();
        if (magic === NBD_STRUCTURED_REPLY_MAGIC) {
          if (q.length < STRUCTURED_REPLY_SIZE) return;
          const h = q.take(STRUCTURED_REPLY_SIZE);
          this.chunkFlags = h.readUInt16BE(4);
          this.chunkType = h.readUInt16BE(6);
          this.currentHandle = h.readUInt32BE(12);
          this.chunkLength = h.readUInt32BE(16);
          const p = this.pending.get(this.currentHandle);
          if (!p || h.readUInt32BE(8) !== 0) return this.violation(`structured reply for unknown handle ${this.currentHandle}`);
          this.current = p;
          this.state = State.StructuredPayload;
        } else if (magic === NBD_SIMPLE_REPLY_MAGIC) {
          if (q.length < SIMPLE_REPLY_SIZE) return;
          const h = q.take(SIMPLE_REPLY_SIZE);
          const error = h.readUInt32BE(4);
          const handle = h.readUInt32BE(12);
          const p = this.pending.get(handle);
          if (!p || h.readUInt32BE(8) !== 0) return this.violation(`simple reply for unknown handle ${handle}`);
          this.currentHandle = handle;
          this.current = p;
          if (error !== 0) {
            // On error no payload follows (qemu, nbdkit and nbd-server agree).
            p.error = this.commandError(p, error);
            this.complete();
          } else if (p.type === NBD_CMD_READ) {
            this.state = State.SimpleData;
          } else {
            this.complete();
          }
        } else {
          return this.violation(`bad reply magic 0x${magic.toString(16)}`);
        }
      } else if (this.state === State.SimpleData) {
        const p = this.current as Pending;
        if (q.length < p.length) return;
        const views: Buffer[] = [];
        q.takeViews(p.length, views);
        p.pieces = [{ offset: p.offset, views, length: p.length }];
        this.state = State.Header;
        this.complete();
      } else {
        if (q.length < this.chunkLength) return;
        this.state = State.Header;
        this.structuredChunk(this.current as Pending);
        if (this.dead) return;
        if (this.chunkFlags & NBD_REPLY_FLAG_DONE) this.complete();
      }
    }
  }

  private structuredChunk(p: Pending): void {
    const q = this.q;
    const len = this.chunkLength;
    switch (this.chunkType) {
      case NBD_REPLY_TYPE_OFFSET_DATA: {
        if (p.type !== NBD_CMD_READ || len < 8) return this.violation('unexpected OFFSET_DATA chunk');
        const offset = readU64(q.take(8), 0);
        const n = len - 8;
        if (offset < p.offset || offset + n > p.offset + p.length) return this.violation('OFFSET_DATA outside the request');
        const views: Buffer[] = [];
        q.takeViews(n, views);
        (p.pieces ??= []).push({ offset, views, length: n });
        return;
      }
      case NBD_REPLY_TYPE_OFFSET_HOLE: {
        if (p.type !== NBD_CMD_READ || len !== 12) return this.violation('unexpected OFFSET_HOLE chunk');
        const b = q.take(12);
        const offset = readU64(b, 0);
        const n = b.readUInt32BE(8);
        if (offset < p.offset || offset + n > p.offset + p.length) return this.violation('OFFSET_HOLE outside the request');
        (p.pieces ??= []).push({ offset, views: null, length: n });
        return;
      }
      case NBD_REPLY_TYPE_BLOCK_STATUS: {
        if (p.type !== NBD_CMD_BLOCK_STATUS || len < 12 || (len - 4) % 8 !== 0) {
          return this.violation('unexpected BLOCK_STATUS chunk');
        }
        const b = q.take(len);
        const id = b.readUInt32BE(0);
        const extents: StatusExtent[] = [];
        for (let at = 4; at < len; at += 8) extents.push({ length: b.readUInt32BE(at), flags: b.readUInt32BE(at + 4) });
        (p.status ??= new Map()).set(id, extents);
        return;
      }
      case NBD_REPLY_TYPE_NONE:
        q.skip(len);
        return;
      default: {
        if (this.chunkType & 0x8000) {
          // NBD_REPLY_TYPE_ERROR / ERROR_OFFSET (or a future error type): u32 error, u16 len, msg.
          const b = q.take(len);
          const errno = len >= 4 ? b.readUInt32BE(0) : 5;
          const msgLen = len >= 6 ? b.readUInt16BE(4) : 0;
          const msg = b.subarray(6, 6 + msgLen).toString('utf8');
          // ERROR_OFFSET says where inside the request the error happened.
          const offset =
            this.chunkType === NBD_REPLY_TYPE_ERROR_OFFSET && len >= 6 + msgLen + 8 ? readU64(b, 6 + msgLen) : p.offset;
          p.error ??= this.commandError(p, errno, msg, offset);
          return;
        }
        q.skip(len); // unknown informational chunk
      }
    }
  }

  private commandError(p: Pending, errno: number, msg?: string, offset = p.offset): NbdCommandError {
    return new NbdCommandError(errno, this.ctx({ command: commandName(p.type), offset, length: p.length }), msg || undefined);
  }

  private complete(): void {
    const p = this.current as Pending;
    this.current = undefined;
    this.pending.delete(this.currentHandle);
    if (p.error) return p.reject(p.error);
    if (p.type === NBD_CMD_READ) {
      const r = this.assembleRead(p);
      if (r) (p.resolve as (v: ReadReply) => void)(r);
      return;
    }
    if (p.type === NBD_CMD_BLOCK_STATUS) {
      return (p.resolve as (v: StatusReply) => void)(p.status ?? new Map());
    }
    (p.resolve as (v: void) => void)(undefined);
  }

  private assembleRead(p: Pending): ReadReply | undefined {
    const pieces = p.pieces ?? [];
    // Servers may send chunks in any order; qemu and nbdkit send them in order.
    for (let i = 1; i < pieces.length; i++) {
      if (pieces[i].offset < pieces[i - 1].offset) {
        pieces.sort((a, b) => a.offset - b.offset);
        break;
      }
    }
    const views: Buffer[] = [];
    let zero = true;
    let at = p.offset;
    for (const piece of pieces) {
      if (piece.offset !== at) {
        this.violation(`READ reply does not cover [${at}, ${piece.offset})`);
        return undefined;
      }
      if (piece.views) {
        for (const v of piece.views) {
          if (zero && !isZero(v)) zero = false;
          views.push(v);
        }
      } else {
        zeroViews(piece.length, views);
      }
      at += piece.length;
    }
    if (at !== p.offset + p.length) {
      this.violation(`READ reply covers ${at - p.offset} of ${p.length} bytes`);
      return undefined;
    }
    return { offset: p.offset, length: p.length, views, zero };
  }

  // ---- transmission: sending ----

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /**
   * Queue one request. Resolves with the command's result type (void,
   * ReadReply or StatusReply). Requests of the same tick share one writev.
   */
  request<T>(type: number, flags: number, offset: number, length: number, payload: readonly Buffer[] = NO_PAYLOAD): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.closing) {
      return Promise.reject(new NbdConnectionError('connection is closed', this.ctx({ command: commandName(type), offset, length })));
    }
    const handle = this.nextHandle;
    this.nextHandle = this.nextHandle === 0xffffffff ? 1 : this.nextHandle + 1;
    const h = Buffer.allocUnsafe(REQUEST_HEADER_SIZE);
    h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeUInt32BE(0, 8);
    h.writeUInt32BE(handle, 12);
    writeU64(h, offset, 16);
    h.writeUInt32BE(length, 24);
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(h);
    for (const b of payload) this.socket.write(b);
    if (type === NBD_CMD_DISC) return Promise.resolve(undefined as T);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(handle, { type, offset, length, resolve: resolve as (v: never) => void, reject });
    });
  }

  /** Send DISC once in-flight requests are answered, then close the socket. */
  async close(): Promise<void> {
    if (this.closing || this.dead) {
      this.closing = true;
      this.socket.destroy();
      return;
    }
    const drains = [...this.pending.values()].map(
      (p) => new Promise<void>((r) => {
        const { resolve, reject } = p;
        p.resolve = ((v: never) => { resolve(v); r(); }) as (v: never) => void;
        p.reject = (e) => { reject(e); r(); };
      }),
    );
    await Promise.all(drains);
    if (!this.dead) {
      this.request(NBD_CMD_DISC, 0, 0, 0).catch(() => undefined);
      this.closing = true;
      this.socket.end();
    }
    this.closing = true;
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    await this.closed;
    clearTimeout(timer);
  }

  /** Abort the connection at once (in-flight requests fail). */
  destroy(): void {
    this.closing = true;
    this.fail('connection destroyed by client');
  }
}
