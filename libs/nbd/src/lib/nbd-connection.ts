/**
 * One NBD connection: socket, handshake, and the transmission phase with
 * many requests in flight, matched to replies by handle.
 *
 * Hot path: the socket uses Node's `onread` with a buffer generator. Reply
 * headers land in a small static buffer; when the parser is inside a READ
 * payload, the next socket read goes straight into that request's
 * destination buffer (taken from a pool), so payload bytes are not copied
 * by JS and no per-read buffers are allocated. Requests issued in the same
 * tick are corked into one writev.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { BufferPool } from './buffer-pool';
import { ByteQueue } from './byte-queue';
import { NbdCommandError, NbdConnectionError, NbdError, NbdHandshakeError, commandName } from './nbd-errors';
import { ExportInfo, ExportListing, HandshakeFailure, HandshakeIo, NegotiateOptions, listExportsOverIo, negotiate } from './nbd-handshake';
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
import { isZero } from './zero';

/** A TLS pre-shared key (qemu's keys.psk line "identity:hexkey"). */
export interface NbdTlsPsk {
  identity: string;
  /** Hex. */
  key: string;
}

/**
 * TLS 1.2 PSK suites GnuTLS (qemu-nbd, nbdkit) serves with tls-creds-psk,
 * ECDHE first (forward secrecy), plain PSK last. Against qemu-nbd 7.2 Node
 * negotiates TLS 1.3 (TLS_CHACHA20_POLY1305_SHA256 or AES-GCM, PSK with
 * (EC)DHE); these suites are for a server that stops at TLS 1.2.
 */
export const NBD_TLS_PSK_CIPHERS =
  'ECDHE-PSK-CHACHA20-POLY1305:DHE-PSK-AES128-GCM-SHA256:DHE-PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384';

export interface ConnectOptions extends NegotiateOptions {
  address: NbdAddress;
  /** TLS-PSK: NBD_OPT_STARTTLS, then TLS with this key (needed for nbds:// addresses). */
  tlsPsk?: NbdTlsPsk;
  /** Give up connecting + negotiating after this long. Default 30 s. */
  connectTimeoutMs?: number;
  /** Where READ buffers come from (shared by a client's connections). */
  pool?: BufferPool;
}

/** A READ reply. Holes are zero-filled in data. */
export interface ReadReply {
  offset: number;
  length: number;
  data: Buffer;
  /** Every byte is zero (holes and/or zero data): write it as WRITE_ZEROES. */
  zero: boolean;
  /** Give data back to the pool; do not touch data afterwards. Optional. */
  release(): void;
}

/** One extent of a BLOCK_STATUS reply, in the context's own flag space. */
export interface StatusExtent {
  length: number;
  flags: number;
}

/** BLOCK_STATUS reply: context id -> extents starting at the request offset. */
export type StatusReply = Map<number, StatusExtent[]>;

/** A READ's destination buffer (every READ is sent with one). */
function readBuffer(p: Pending): Buffer {
  if (!p.buf) throw new Error('NBD: data for a request that has no read buffer');
  return p.buf;
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  resolve: (value: never) => void;
  reject: (err: Error) => void;
  /** READ destination. */
  buf?: Buffer;
  /** READ bytes covered by data or hole chunks so far. */
  covered?: number;
  sawData?: boolean;
  status?: StatusReply;
  error?: NbdCommandError;
}

const enum State {
  /** Collecting a reply header into hdr. */
  Header,
  /** Collecting a small chunk payload (or the 8-byte OFFSET_DATA prefix) into small. */
  Small,
  /** Copying READ payload into the request's buffer. */
  Data,
}

const NO_PAYLOAD: readonly Buffer[] = [];
/** Static read buffer: reply headers, acks and small chunks land here. */
const STATIC_READ_SIZE = 16 * 1024;
/** Payload remainders at least this big are read straight into the destination. */
const DIRECT_READ_MIN = 4096;

export class NbdConnection {
  private readonly handshakeQ = new ByteQueue();
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  private corked = false;
  private dead: NbdConnectionError | undefined;
  private closing = false;
  private handshaking = true;
  private readonly pool: BufferPool;
  private readonly closed: Promise<void>;
  private socket!: net.Socket;
  /** The plain TCP/Unix socket under a TLS one (destroyed with it). */
  private raw: net.Socket;
  private markClosed!: () => void;

  // Transmission parser state.
  private state = State.Header;
  private readonly hdr = Buffer.alloc(STRUCTURED_REPLY_SIZE);
  private hdrFill = 0;
  private hdrNeed = 4;
  private small = Buffer.alloc(256);
  private smallFill = 0;
  private smallNeed = 0;
  private current: Pending | undefined;
  private currentHandle = 0;
  private structured = false;
  private chunkFlags = 0;
  private chunkType = 0;
  private chunkLength = 0;
  private dataPos = 0;
  private dataEnd = 0;
  /** The last socket read went straight into current.buf at dataPos. */
  private direct = false;
  private readonly staticRead = Buffer.allocUnsafeSlow(STATIC_READ_SIZE);

  /** Handshake-phase reader waiting for bytes. */
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  /** Called once when the connection fails (not on close()). */
  onDead?: (err: NbdConnectionError) => void;
  info!: ExportInfo;
  readonly server: string;
  /** What TLS negotiated (null: plain NBD). */
  tlsSession: { protocol: string; cipher: string } | null = null;

  private constructor(
    readonly address: NbdAddress,
    pool: BufferPool | undefined,
    private readonly tlsPsk?: NbdTlsPsk,
  ) {
    this.server = formatNbdUri(address);
    this.pool = pool ?? new BufferPool();
    // Plain NBD reads straight into request buffers (onread); a socket that TLS
    // will take over reads the usual way, since TLS decrypts into its own buffers.
    const onread = tlsPsk ? undefined : { buffer: () => this.nextReadBuffer(), callback: (n: number, b: Buffer) => this.onRead(n, b) };
    this.socket =
      address.socketPath !== undefined
        ? net.createConnection({ path: address.socketPath, ...(onread ? { onread } : {}) })
        : net.createConnection({ host: address.host, port: address.port ?? 10809, ...(onread ? { onread } : {}) });
    this.raw = this.socket;
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.watch(this.socket);
    if (tlsPsk) this.socket.on('data', this.onData);
  }

  private watch(socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A Unix socket this user may not open: say which setting lets it in.
      const hint =
        err.code === 'EACCES' && this.address.socketPath !== undefined
          ? ` (this process, uid ${process.getuid?.() ?? '?'}, may not open ${this.address.socketPath}: run it as the nbd-exporter's user, add it to the exporter's NBD_SOCKET_GROUP, or set NBD_TARGET_TRANSPORT=tcp on the backup-worker)`
          : '';
      this.fail(`connection error: ${err.message}${hint}`, err);
    });
    socket.once('close', () => {
      this.markClosed();
      this.fail('server closed the connection');
    });
  }

  /** Reads of a TLS connection (and of its plain socket before STARTTLS). */
  private readonly onData = (b: Buffer): void => {
    if (this.dead) return;
    if (this.handshaking) {
      this.handshakeQ.push(b);
      this.pump();
    } else {
      this.feed(b, 0, b.length);
    }
  };

  /**
   * After the server's ACK to NBD_OPT_STARTTLS: TLS-PSK over the same socket.
   * The server sends nothing between its ACK and our ClientHello, so no
   * plain bytes are left behind.
   */
  private startTls(psk: NbdTlsPsk): Promise<void> {
    const key = Buffer.from(psk.key, 'hex');
    if (key.length < 16 || key.toString('hex') !== psk.key.toLowerCase()) {
      return Promise.reject(new HandshakeFailure('the TLS pre-shared key must be at least 16 bytes, in hex'));
    }
    this.raw.off('data', this.onData);
    const secure = tls.connect({
      socket: this.raw,
      ciphers: NBD_TLS_PSK_CIPHERS,
      minVersion: 'TLSv1.2',
      pskCallback: () => ({ psk: key, identity: psk.identity }),
      // PSK authenticates the server (only it holds the key): there is no certificate.
      checkServerIdentity: () => undefined,
    });
    this.socket = secure;
    secure.on('data', this.onData);
    return new Promise<void>((resolve, reject) => {
      const failed = (err: Error) => reject(new HandshakeFailure(`TLS-PSK handshake failed (wrong key for this export?): ${err.message}`));
      secure.once('error', failed);
      secure.once('close', () => failed(new Error('the server closed the connection')));
      secure.once('secureConnect', () => {
        const c = secure.getCipher();
        this.tlsSession = { protocol: secure.getProtocol() ?? 'unknown', cipher: c.standardName ?? c.name };
        secure.off('error', failed);
        secure.removeAllListeners('close');
        this.watch(secure);
        resolve();
      });
    });
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

  private static async openSocket(address: NbdAddress, timeoutMs: number, pool?: BufferPool, tlsPsk?: NbdTlsPsk): Promise<NbdConnection> {
    if (address.tls && !tlsPsk) {
      throw new NbdHandshakeError('the address asks for TLS (nbds) but no pre-shared key was given: this client speaks TLS-PSK only', {
        server: formatNbdUri(address),
        exportName: address.exportName,
      });
    }
    const conn = new NbdConnection(address, pool, tlsPsk);
    const socket = conn.socket;
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
    const conn = await NbdConnection.openSocket(opts.address, timeoutMs, opts.pool, opts.tlsPsk);
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
    // Anything the server sent after the handshake (it should not) goes to the parser.
    while (conn.handshakeQ.length) {
      const b = conn.handshakeQ.take(conn.handshakeQ.length);
      conn.feed(b, 0, b.length);
    }
    return conn;
  }

  /** OPT_LIST on a fresh connection. */
  static async listExports(address: NbdAddress, timeoutMs = 30000, tlsPsk?: NbdTlsPsk): Promise<ExportListing[]> {
    const conn = await NbdConnection.openSocket(address, timeoutMs, undefined, tlsPsk);
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
      ...(this.tlsPsk ? { startTls: () => this.startTls(this.tlsPsk as NbdTlsPsk) } : {}),
    };
  }

  private pump(): void {
    const w = this.waiter;
    if (w && this.handshakeQ.length >= w.n) {
      this.waiter = undefined;
      w.resolve(this.handshakeQ.take(w.n));
    }
  }

  // ---- socket reads ----

  /** Where the next socket read should land. */
  private nextReadBuffer(): Buffer {
    if (this.state === State.Data && !this.handshaking && this.dataEnd - this.dataPos >= DIRECT_READ_MIN) {
      this.direct = true;
      return readBuffer(this.current as Pending).subarray(this.dataPos, this.dataEnd);
    }
    this.direct = false;
    return this.staticRead;
  }

  /** Socket read callback; returning true keeps the socket flowing. */
  private onRead(n: number, buf: Buffer): boolean {
    if (this.dead) return true;
    if (this.handshaking) {
      // Copy: the static buffer is reused for the next read.
      this.handshakeQ.push(Buffer.from(buf.subarray(0, n)));
      this.pump();
    } else if (this.direct) {
      this.dataPos += n;
      if (this.dataPos === this.dataEnd) this.dataDone();
    } else {
      this.feed(buf, 0, n);
    }
    return true;
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
      p.reject(
        new NbdConnectionError(
          `${message} with ${commandName(p.type)} in flight`,
          this.ctx({ command: commandName(p.type), offset: p.offset, length: p.length }),
          cause ? { cause } : undefined,
        ),
      );
    }
    this.pending.clear();
    this.socket.destroy();
    if (this.raw !== this.socket) this.raw.destroy();
    if (!wasClosing) this.onDead?.(err);
  }

  /** Protocol violation: the stream cannot be trusted any more. */
  private violation(what: string): void {
    this.fail(`protocol error: ${what}`);
  }

  // ---- transmission: parsing ----

  /** Consume buf[at, end): every byte is used or copied before returning. */
  private feed(buf: Buffer, at: number, end: number): void {
    while (at < end && !this.dead) {
      switch (this.state) {
        case State.Header: {
          const m = Math.min(this.hdrNeed - this.hdrFill, end - at);
          buf.copy(this.hdr, this.hdrFill, at, at + m);
          this.hdrFill += m;
          at += m;
          if (this.hdrFill < this.hdrNeed) break;
          if (this.hdrNeed === 4) {
            const magic = this.hdr.readUInt32BE(0);
            if (magic === NBD_STRUCTURED_REPLY_MAGIC) this.hdrNeed = STRUCTURED_REPLY_SIZE;
            else if (magic === NBD_SIMPLE_REPLY_MAGIC) this.hdrNeed = SIMPLE_REPLY_SIZE;
            else return this.violation(`bad reply magic 0x${magic.toString(16)}`);
            break;
          }
          this.onHeader();
          break;
        }
        case State.Small: {
          const m = Math.min(this.smallNeed - this.smallFill, end - at);
          buf.copy(this.small, this.smallFill, at, at + m);
          this.smallFill += m;
          at += m;
          if (this.smallFill === this.smallNeed) this.onSmall();
          break;
        }
        case State.Data: {
          const m = Math.min(this.dataEnd - this.dataPos, end - at);
          buf.copy(readBuffer(this.current as Pending), this.dataPos, at, at + m);
          this.dataPos += m;
          at += m;
          if (this.dataPos === this.dataEnd) this.dataDone();
          break;
        }
      }
    }
  }

  private resetHeader(): void {
    this.state = State.Header;
    this.hdrFill = 0;
    this.hdrNeed = 4;
  }

  private expectSmall(n: number): void {
    if (this.small.length < n) this.small = Buffer.alloc(Math.max(n, this.small.length * 2));
    this.smallFill = 0;
    this.smallNeed = n;
    this.state = State.Small;
    if (n === 0) this.onSmall();
  }

  private onHeader(): void {
    const h = this.hdr;
    if (this.hdrNeed === SIMPLE_REPLY_SIZE) {
      const error = h.readUInt32BE(4);
      const handle = h.readUInt32BE(12);
      const p = this.pending.get(handle);
      if (!p || h.readUInt32BE(8) !== 0) return this.violation(`simple reply for unknown handle ${handle}`);
      this.structured = false;
      this.currentHandle = handle;
      this.current = p;
      if (error !== 0) {
        // On error no payload follows (qemu, nbdkit and nbd-server agree).
        p.error = this.commandError(p, error);
        this.resetHeader();
        this.complete();
      } else if (p.type === NBD_CMD_READ && p.length > 0) {
        p.covered = p.length;
        p.sawData = true;
        this.dataPos = 0;
        this.dataEnd = p.length;
        this.state = State.Data;
      } else {
        this.resetHeader();
        this.complete();
      }
      return;
    }
    this.chunkFlags = h.readUInt16BE(4);
    this.chunkType = h.readUInt16BE(6);
    this.currentHandle = h.readUInt32BE(12);
    this.chunkLength = h.readUInt32BE(16);
    const p = this.pending.get(this.currentHandle);
    if (!p || h.readUInt32BE(8) !== 0) return this.violation(`structured reply for unknown handle ${this.currentHandle}`);
    this.structured = true;
    this.current = p;
    if (this.chunkType === NBD_REPLY_TYPE_OFFSET_DATA) {
      if (p.type !== NBD_CMD_READ || this.chunkLength < 8) return this.violation('unexpected OFFSET_DATA chunk');
      this.expectSmall(8); // the offset; the data follows
      return;
    }
    if (this.chunkLength > 16 * 1024 * 1024) return this.violation(`chunk of ${this.chunkLength} bytes`);
    this.expectSmall(this.chunkLength);
  }

  /** A whole small payload (or the OFFSET_DATA offset) is in this.small. */
  private onSmall(): void {
    const p = this.current as Pending;
    const b = this.small;
    const len = this.smallNeed;
    switch (this.chunkType) {
      case NBD_REPLY_TYPE_OFFSET_DATA: {
        const offset = readU64(b, 0);
        const n = this.chunkLength - 8;
        if (offset < p.offset || offset + n > p.offset + p.length) return this.violation('OFFSET_DATA outside the request');
        p.covered = (p.covered ?? 0) + n;
        p.sawData = true;
        this.dataPos = offset - p.offset;
        this.dataEnd = this.dataPos + n;
        this.state = State.Data;
        if (n === 0) this.dataDone();
        return;
      }
      case NBD_REPLY_TYPE_OFFSET_HOLE: {
        if (p.type !== NBD_CMD_READ || len !== 12) return this.violation('unexpected OFFSET_HOLE chunk');
        const offset = readU64(b, 0);
        const n = b.readUInt32BE(8);
        if (offset < p.offset || offset + n > p.offset + p.length) return this.violation('OFFSET_HOLE outside the request');
        readBuffer(p).fill(0, offset - p.offset, offset - p.offset + n);
        p.covered = (p.covered ?? 0) + n;
        break;
      }
      case NBD_REPLY_TYPE_BLOCK_STATUS: {
        if (p.type !== NBD_CMD_BLOCK_STATUS || len < 12 || (len - 4) % 8 !== 0) {
          return this.violation('unexpected BLOCK_STATUS chunk');
        }
        const id = b.readUInt32BE(0);
        const extents: StatusExtent[] = [];
        for (let at = 4; at < len; at += 8) extents.push({ length: b.readUInt32BE(at), flags: b.readUInt32BE(at + 4) });
        (p.status ??= new Map()).set(id, extents);
        break;
      }
      case NBD_REPLY_TYPE_NONE:
        break;
      default:
        if (this.chunkType & 0x8000) {
          // NBD_REPLY_TYPE_ERROR / ERROR_OFFSET (or a future error type): u32 error, u16 len, msg.
          const errno = len >= 4 ? b.readUInt32BE(0) : 5;
          const msgLen = len >= 6 ? Math.min(b.readUInt16BE(4), len - 6) : 0;
          const msg = b.subarray(6, 6 + msgLen).toString('utf8');
          // ERROR_OFFSET says where inside the request the error happened.
          const offset = this.chunkType === NBD_REPLY_TYPE_ERROR_OFFSET && len >= 6 + msgLen + 8 ? readU64(b, 6 + msgLen) : p.offset;
          p.error ??= this.commandError(p, errno, msg, offset);
        }
      // Unknown informational chunks are ignored.
    }
    this.endChunk();
  }

  private dataDone(): void {
    this.direct = false;
    if (this.structured) this.endChunk();
    else {
      this.resetHeader();
      this.complete();
    }
  }

  private endChunk(): void {
    this.resetHeader();
    if (this.chunkFlags & NBD_REPLY_FLAG_DONE) this.complete();
  }

  private commandError(p: Pending, errno: number, msg?: string, offset = p.offset): NbdCommandError {
    return new NbdCommandError(errno, this.ctx({ command: commandName(p.type), offset, length: p.length }), msg || undefined);
  }

  private complete(): void {
    const p = this.current as Pending;
    this.current = undefined;
    this.pending.delete(this.currentHandle);
    if (p.error) {
      if (p.buf) this.pool.put(p.buf);
      return p.reject(p.error);
    }
    if (p.type === NBD_CMD_READ) {
      const buf = readBuffer(p);
      if ((p.covered ?? 0) !== p.length) {
        // Servers must describe every byte of a successful read.
        const msg = `protocol error: READ reply covers ${p.covered ?? 0} of ${p.length} bytes`;
        p.reject(new NbdConnectionError(msg, this.ctx({ command: 'READ', offset: p.offset, length: p.length })));
        return this.fail(msg);
      }
      const pool = this.pool;
      const reply: ReadReply = {
        offset: p.offset,
        length: p.length,
        data: buf,
        zero: !p.sawData || isZero(buf),
        release: () => pool.put(buf),
      };
      return (p.resolve as (v: ReadReply) => void)(reply);
    }
    if (p.type === NBD_CMD_BLOCK_STATUS) {
      return (p.resolve as (v: StatusReply) => void)(p.status ?? new Map());
    }
    (p.resolve as (v: void) => void)(undefined);
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
      const p: Pending = { type, offset, length, resolve: resolve as (v: never) => void, reject };
      if (type === NBD_CMD_READ) p.buf = this.pool.get(length);
      this.pending.set(handle, p);
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
      (p) =>
        new Promise<void>((r) => {
          const { resolve, reject } = p;
          p.resolve = ((v: never) => {
            resolve(v);
            r();
          }) as (v: never) => void;
          p.reject = (e) => {
            reject(e);
            r();
          };
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
