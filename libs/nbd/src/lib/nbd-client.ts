/**
 * NbdClient: one export, one or more connections. Several connections are
 * opened only when the server advertises NBD_FLAG_CAN_MULTI_CONN, because
 * only then is a FLUSH on one connection guaranteed to cover writes made on
 * the others. Requests go to the connection with the fewest in flight.
 */
import { NbdCommandError, NbdConnectionError, NbdError } from './nbd-errors';
import { ExportInfo, ExportListing } from './nbd-handshake';
import { ConnectOptions, NbdConnection, NbdTlsPsk, ReadReply, StatusExtent, StatusReply } from './nbd-connection';
import {
  CONTEXT_BASE_ALLOCATION,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
} from './nbd-protocol';
import { NbdAddress, formatNbdUri, parseNbdUri } from './nbd-uri';
import { ZEROES, ZERO_BLOCK_SIZE } from './zero';
import { BufferPool } from './buffer-pool';

export interface NbdClientOptions {
  /** nbd://host:port/export or nbd+unix:///export?socket=/path */
  uri?: string;
  host?: string;
  port?: number;
  socketPath?: string;
  /** Export name (overrides the one in uri). Default "". */
  exportName?: string;
  /** Connections to open when the server allows multi-conn. Default 1. */
  connections?: number;
  /**
   * Meta contexts to negotiate (e.g. qemu:dirty-bitmap:cbt-1); connecting
   * fails if the server lacks one. base:allocation is negotiated anyway
   * whenever the server offers it.
   */
  metaContexts?: readonly string[];
  /** Default true; false forces simple replies (for testing old servers). */
  structuredReplies?: boolean;
  connectTimeoutMs?: number;
  /**
   * TLS-PSK (an export the nbd-exporter made with its own key): every
   * connection does NBD_OPT_STARTTLS and TLS (1.3, or 1.2 PSK suites) with this key, and fails
   * rather than go on in plain text. Needed for nbds:// URIs.
   */
  tlsPsk?: NbdTlsPsk;
}

export interface WriteFlags {
  /** Force unit access: data is durable when the reply arrives. */
  fua?: boolean;
}

export interface WriteZeroesFlags extends WriteFlags {
  /** NBD_CMD_FLAG_NO_HOLE: the server must allocate (not punch a hole). */
  noHole?: boolean;
  /** NBD_CMD_FLAG_FAST_ZERO: fail with ENOTSUP rather than write slowly. */
  fastZero?: boolean;
}

/** An extent with absolute offset, in the flag space of its meta context. */
export interface BlockStatusExtent {
  offset: number;
  length: number;
  flags: number;
}

function resolveAddress(o: NbdClientOptions): NbdAddress {
  const base: NbdAddress = o.uri ? parseNbdUri(o.uri) : { exportName: '' };
  const addr: NbdAddress = {
    host: o.host ?? base.host,
    port: o.port ?? base.port,
    socketPath: o.socketPath ?? base.socketPath,
    exportName: o.exportName ?? base.exportName,
    ...(base.tls || o.tlsPsk ? { tls: true } : {}),
    ...(o.tlsPsk ? { tlsUsername: o.tlsPsk.identity } : base.tlsUsername ? { tlsUsername: base.tlsUsername } : {}),
  };
  if (addr.socketPath === undefined && addr.host === undefined) {
    throw new Error('NBD client needs uri, host or socketPath');
  }
  return addr;
}

export class NbdClient {
  private conns: NbdConnection[] = [];

  private closed = false;
  /** Lowered when the server refuses extra connections. */
  private maxConns = Number.POSITIVE_INFINITY;
  /** What the server said at the first connect (kept while connections are down). */
  readonly info: ExportInfo;

  private constructor(
    readonly options: NbdClientOptions,
    readonly address: NbdAddress,
    private readonly connectOpts: ConnectOptions,
    first: NbdConnection,
  ) {
    this.conns.push(first);
    this.info = first.info;
  }

  /** Connect, negotiate, and open extra connections if multi-conn is allowed. */
  static async connect(target: string | NbdClientOptions): Promise<NbdClient> {
    const options: NbdClientOptions = typeof target === 'string' ? { uri: target } : target;
    const address = resolveAddress(options);
    const connectOpts: ConnectOptions = {
      address,
      exportName: address.exportName,
      metaContexts: options.metaContexts,
      optionalMetaContexts: [CONTEXT_BASE_ALLOCATION],
      structuredReplies: options.structuredReplies,
      connectTimeoutMs: options.connectTimeoutMs,
      tlsPsk: options.tlsPsk,
    };
    connectOpts.pool = new BufferPool();
    const first = await NbdConnection.connect(connectOpts);
    const client = new NbdClient(options, address, connectOpts, first);
    try {
      await client.fillConnections();
    } catch (err) {
      await client.close().catch(() => undefined);
      throw err;
    }
    return client;
  }

  /** Number of connections this client wants (1 unless multi-conn). */
  private get wanted(): number {
    const n = Math.max(1, Math.floor(this.options.connections ?? 1));
    return this.canMultiConn ? n : 1;
  }

  /**
   * Open the extra connections. A server may advertise multi-conn yet cap
   * the number of clients (qemu-nbd -e N holds connection N+1 unanswered),
   * so extras get a short timeout and failing ones are dropped for good:
   * fewer connections is slower, not wrong.
   */
  private async fillConnections(): Promise<void> {
    const missing = Math.min(this.wanted, this.maxConns) - this.conns.length;
    if (missing <= 0) return;
    const opts = { ...this.connectOpts, connectTimeoutMs: Math.min(this.connectOpts.connectTimeoutMs ?? 30000, 5000) };
    const results = await Promise.allSettled(Array.from({ length: missing }, () => NbdConnection.connect(opts)));
    for (const r of results) {
      if (r.status === 'fulfilled') this.conns.push(r.value);
      else this.maxConns = Math.max(1, this.conns.length);
    }
  }

  /**
   * Replace failed connections with fresh ones (after a drop). Resolves when
   * the client is whole again; throws if the server cannot be reached.
   */
  async repair(): Promise<void> {
    if (this.closed) throw new NbdConnectionError('client is closed', this.ctx());
    const alive = this.conns.filter((c) => c.alive);
    for (const c of this.conns) if (!c.alive) c.destroy();
    this.conns = alive;
    if (this.conns.length === 0) {
      const c = await NbdConnection.connect(this.connectOpts);
      if (c.info.size !== this.info.size) {
        await c.close();
        throw new NbdError(`export size changed from ${this.info.size} to ${c.info.size} across reconnect`, this.ctx());
      }
      this.conns.push(c);
    }
    await this.fillConnections();
  }

  /** True when every connection is up. */
  get healthy(): boolean {
    return !this.closed && this.conns.length > 0 && this.conns.every((c) => c.alive);
  }

  /** The TLS protocol and cipher of the first connection; null for plain NBD. */
  get tls(): { protocol: string; cipher: string } | null {
    return this.conns[0]?.tlsSession ?? null;
  }

  get connectionCount(): number {
    return this.conns.length;
  }

  get size(): number {
    return this.info.size;
  }

  get exportName(): string {
    return this.address.exportName;
  }

  /** Display form of the server (for logs and errors). */
  get server(): string {
    return formatNbdUri(this.address);
  }

  private has(flag: number): boolean {
    return (this.info.flags & flag) !== 0;
  }
  get readOnly(): boolean {
    return this.has(NBD_FLAG_READ_ONLY);
  }
  get canMultiConn(): boolean {
    return this.has(NBD_FLAG_CAN_MULTI_CONN);
  }
  get canFlush(): boolean {
    return this.has(NBD_FLAG_SEND_FLUSH);
  }
  get canFua(): boolean {
    return this.has(NBD_FLAG_SEND_FUA);
  }
  get canTrim(): boolean {
    return this.has(NBD_FLAG_SEND_TRIM);
  }
  get canWriteZeroes(): boolean {
    return this.has(NBD_FLAG_SEND_WRITE_ZEROES);
  }
  get canFastZero(): boolean {
    return this.has(NBD_FLAG_SEND_FAST_ZERO);
  }
  /** Negotiated meta contexts (name -> id). */
  get metaContexts(): ReadonlyMap<string, number> {
    return this.info.metaContexts;
  }

  private ctx(extra: { command?: string; offset?: number; length?: number } = {}) {
    return { server: this.server, exportName: this.exportName, ...extra };
  }

  /** The live connection with the fewest requests in flight. */
  private pick(command: string, offset: number, length: number): NbdConnection {
    let best: NbdConnection | undefined;
    for (const c of this.conns) {
      if (c.alive && (!best || c.inFlight < best.inFlight)) best = c;
    }
    if (!best) {
      const why = this.closed ? 'client is closed' : (this.conns[0]?.failure?.message ?? 'no live connection');
      throw new NbdConnectionError(`cannot send ${command}: ${why}`, this.ctx({ command, offset, length }));
    }
    return best;
  }

  private check(command: string, offset: number, length: number, opts: { write?: boolean; maxBlock?: boolean } = {}): void {
    const bad = (msg: string) => new NbdError(`${command}: ${msg}`, this.ctx({ command, offset, length }));
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw bad('offset and length must be non-negative integers');
    }
    if (offset + length > this.size) throw bad(`range ends beyond the export size ${this.size}`);
    if (length > 0xffffffff) throw bad('length does not fit in 32 bits');
    if (opts.maxBlock && length > this.info.maxBlock) throw bad(`length exceeds the server's maximum block size ${this.info.maxBlock}`);
    if (opts.write && this.readOnly) throw bad('export is read-only');
  }

  /**
   * READ with zero detection; the buffer comes from the client's pool and
   * may be given back with reply.release() once the caller is done with it
   * (the copier does, after the WRITE is acknowledged). Hot path.
   */
  readReply(offset: number, length: number): Promise<ReadReply> {
    try {
      this.check('READ', offset, length, { maxBlock: true });
      return this.pick('READ', offset, length).request<ReadReply>(NBD_CMD_READ, 0, offset, length);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** READ into a Buffer the caller owns (holes read as zeroes). */
  async read(offset: number, length: number): Promise<Buffer> {
    return (await this.readReply(offset, length)).data;
  }

  write(offset: number, data: Buffer | readonly Buffer[], flags: WriteFlags = {}): Promise<void> {
    try {
      const views = Buffer.isBuffer(data) ? [data] : data;
      let length = 0;
      for (const v of views) length += v.length;
      this.check('WRITE', offset, length, { write: true, maxBlock: true });
      const f = flags.fua && this.canFua ? NBD_CMD_FLAG_FUA : 0;
      return this.pick('WRITE', offset, length).request<void>(NBD_CMD_WRITE, f, offset, length, views);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * WRITE_ZEROES. Servers without it get ordinary WRITEs of zero bytes, so
   * callers can rely on the range reading back as zero either way.
   */
  async writeZeroes(offset: number, length: number, flags: WriteZeroesFlags = {}): Promise<void> {
    this.check('WRITE_ZEROES', offset, length, { write: true });
    if (!this.canWriteZeroes) {
      if (flags.fastZero) throw new NbdCommandError(95, this.ctx({ command: 'WRITE_ZEROES', offset, length }), 'server has no WRITE_ZEROES');
      const step = Math.min(this.info.maxBlock, 4 * ZERO_BLOCK_SIZE);
      const jobs: Promise<void>[] = [];
      for (let at = offset; at < offset + length; at += step) {
        const n = Math.min(step, offset + length - at);
        const views: Buffer[] = [];
        for (let k = 0; k < n; k += ZERO_BLOCK_SIZE) views.push(ZEROES.subarray(0, Math.min(ZERO_BLOCK_SIZE, n - k)));
        jobs.push(this.write(at, views, flags));
      }
      await Promise.all(jobs);
      return;
    }
    let f = 0;
    if (flags.fua && this.canFua) f |= NBD_CMD_FLAG_FUA;
    if (flags.noHole) f |= NBD_CMD_FLAG_NO_HOLE;
    if (flags.fastZero && this.canFastZero) f |= NBD_CMD_FLAG_FAST_ZERO;
    return this.pick('WRITE_ZEROES', offset, length).request<void>(NBD_CMD_WRITE_ZEROES, f, offset, length);
  }

  async trim(offset: number, length: number, flags: WriteFlags = {}): Promise<void> {
    this.check('TRIM', offset, length, { write: true });
    if (!this.canTrim) throw new NbdError('TRIM: server does not support TRIM', this.ctx({ command: 'TRIM', offset, length }));
    const f = flags.fua && this.canFua ? NBD_CMD_FLAG_FUA : 0;
    return this.pick('TRIM', offset, length).request<void>(NBD_CMD_TRIM, f, offset, length);
  }

  /**
   * FLUSH every connection. With multi-conn one would do, but flushing all
   * costs little and stays correct if a server is lax about the promise.
   */
  async flush(): Promise<void> {
    if (!this.canFlush) return; // server has no volatile cache to flush
    const live = this.conns.filter((c) => c.alive);
    if (live.length === 0) this.pick('FLUSH', 0, 0);
    await Promise.all(live.map((c) => c.request<void>(NBD_CMD_FLUSH, 0, 0, 0)));
  }

  /** One BLOCK_STATUS request; the reply may cover less than asked. */
  async blockStatusOnce(offset: number, length: number, reqOne = false): Promise<StatusReply> {
    this.check('BLOCK_STATUS', offset, length);
    if (this.metaContexts.size === 0) {
      throw new NbdError('BLOCK_STATUS: no meta context negotiated (pass metaContexts when connecting)', this.ctx({ command: 'BLOCK_STATUS', offset, length }));
    }
    return this.pick('BLOCK_STATUS', offset, length).request<StatusReply>(NBD_CMD_BLOCK_STATUS, reqOne ? NBD_CMD_FLAG_REQ_ONE : 0, offset, length);
  }

  /**
   * Extents of one meta context over [offset, offset+length), looping over
   * partial replies until the whole range is described. Adjacent extents
   * with equal flags are merged.
   */
  async blockStatus(offset: number, length: number, context: string = CONTEXT_BASE_ALLOCATION): Promise<BlockStatusExtent[]> {
    const id = this.metaContexts.get(context);
    if (id === undefined) {
      throw new NbdError(`BLOCK_STATUS: meta context "${context}" was not negotiated`, this.ctx({ command: 'BLOCK_STATUS', offset, length }));
    }
    const out: BlockStatusExtent[] = [];
    const end = offset + length;
    let at = offset;
    // Keep requests well inside 32 bits and aligned so servers answer whole clusters.
    const step = 1024 * 1024 * 1024;
    while (at < end) {
      const n = Math.min(step, end - at);
      const reply = await this.blockStatusOnce(at, n);
      const extents: StatusExtent[] | undefined = reply.get(id);
      if (!extents || extents.length === 0) {
        throw new NbdError(`BLOCK_STATUS reply has no extents for "${context}"`, this.ctx({ command: 'BLOCK_STATUS', offset: at, length: n }));
      }
      for (const e of extents) {
        if (at >= end) break;
        if (e.length === 0) throw new NbdError('BLOCK_STATUS reply has a zero-length extent', this.ctx({ command: 'BLOCK_STATUS', offset: at }));
        const len = Math.min(e.length, end - at); // the last extent may run past the request
        const last = out[out.length - 1];
        if (last && last.flags === e.flags && last.offset + last.length === at) last.length += len;
        else out.push({ offset: at, length: len, flags: e.flags });
        at += len;
      }
    }
    return out;
  }

  /** DISC and close all connections (waits for requests in flight). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.conns.map((c) => c.close()));
  }
}

/** NBD_OPT_LIST: the exports a server offers (nbd-server needs allowlist = true). */
export async function listExports(target: string | NbdClientOptions): Promise<ExportListing[]> {
  const options: NbdClientOptions = typeof target === 'string' ? { uri: target } : target;
  return NbdConnection.listExports(resolveAddress(options), options.connectTimeoutMs, options.tlsPsk);
}
