/**
 * Fixed newstyle negotiation (proto.md "Handshake"). Runs over any byte
 * transport: the connection feeds it with readExact/write before switching
 * the socket to the transmission-phase parser.
 */
import {
  DEFAULT_MAX_BLOCK,
  NBD_CLISERV_MAGIC,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INIT_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_LIST,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_TLS_REQD,
  NBD_REP_ERR_UNSUP,
  NBD_REP_FLAG_ERROR,
  NBD_REP_INFO,
  NBD_REP_MAGIC,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
  OPTION_REPLY_ERRORS,
  readU64,
} from './nbd-protocol';

export interface HandshakeIo {
  readExact(n: number): Promise<Buffer>;
  write(data: Buffer): void;
  /**
   * Set for a TLS connection: after the server acknowledged NBD_OPT_STARTTLS,
   * run the TLS handshake on the socket; readExact/write then go through TLS.
   */
  startTls?: () => Promise<void>;
}

export interface NegotiateOptions {
  exportName: string;
  /** Ask for structured replies (needed for holes and BLOCK_STATUS). Default true. */
  structuredReplies?: boolean;
  /** Meta contexts to select, e.g. qemu:dirty-bitmap:cbt-1. Missing ones fail the connect. */
  metaContexts?: readonly string[];
  /** Also select these when the server has them, without failing if not (base:allocation). */
  optionalMetaContexts?: readonly string[];
}

/** What the server told us about the export. */
export interface ExportInfo {
  exportName: string;
  description?: string;
  size: number;
  /** Transmission flags (NBD_FLAG_*). */
  flags: number;
  minBlock: number;
  preferredBlock: number;
  maxBlock: number;
  structuredReplies: boolean;
  /** Negotiated meta context name -> id used in BLOCK_STATUS replies. */
  metaContexts: ReadonlyMap<string, number>;
}

export interface ExportListing {
  name: string;
  description: string;
}

/** Thrown for negotiation failures; the connection wraps it with context. */
export class HandshakeFailure extends Error {
  constructor(
    message: string,
    readonly replyType?: number,
  ) {
    super(message);
  }
}

interface OptionReply {
  type: number;
  data: Buffer;
}

const OPTION_HEADER = 16;
const REPLY_HEADER = 20;

function optionRequest(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(OPTION_HEADER + data.length);
  out.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
  out.writeUInt32BE(option, 8);
  out.writeUInt32BE(data.length, 12);
  data.copy(out, OPTION_HEADER);
  return out;
}

async function readReply(io: HandshakeIo, option: number): Promise<OptionReply> {
  const h = await io.readExact(REPLY_HEADER);
  if (h.readBigUInt64BE(0) !== NBD_REP_MAGIC) throw new HandshakeFailure('bad option reply magic');
  const replyOption = h.readUInt32BE(8);
  if (replyOption !== option) {
    throw new HandshakeFailure(`option reply for option ${replyOption}, expected ${option}`);
  }
  const type = h.readUInt32BE(12);
  const len = h.readUInt32BE(16);
  // Guard against a hostile or broken server announcing a huge payload.
  if (len > 16 * 1024 * 1024) throw new HandshakeFailure(`option reply of ${len} bytes is too large`);
  const data = len ? Buffer.from(await io.readExact(len)) : Buffer.alloc(0);
  return { type, data };
}

function replyError(what: string, reply: OptionReply): HandshakeFailure {
  const name = OPTION_REPLY_ERRORS[reply.type] ?? `error reply 0x${reply.type.toString(16)}`;
  const msg = reply.data.length ? `: ${reply.data.toString('utf8')}` : '';
  return new HandshakeFailure(`${what} refused: ${name}${msg}`, reply.type);
}

function lengthPrefixed(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(4 + b.length);
  out.writeUInt32BE(b.length, 0);
  b.copy(out, 4);
  return out;
}

/** Greeting and client flags. Returns whether NO_ZEROES was agreed. */
async function greet(io: HandshakeIo): Promise<{ noZeroes: boolean }> {
  const hello = await io.readExact(18);
  if (hello.readBigUInt64BE(0) !== NBD_INIT_MAGIC) throw new HandshakeFailure('not an NBD server (bad magic)');
  const second = hello.readBigUInt64BE(8);
  if (second === NBD_CLISERV_MAGIC) throw new HandshakeFailure('server speaks oldstyle negotiation only');
  if (second !== NBD_OPTS_MAGIC) throw new HandshakeFailure('bad newstyle magic');
  const serverFlags = hello.readUInt16BE(16);
  if (!(serverFlags & NBD_FLAG_FIXED_NEWSTYLE)) {
    throw new HandshakeFailure('server does not support fixed newstyle negotiation');
  }
  const noZeroes = (serverFlags & NBD_FLAG_NO_ZEROES) !== 0;
  const clientFlags = Buffer.allocUnsafe(4);
  clientFlags.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0), 0);
  io.write(clientFlags);
  return { noZeroes };
}

/**
 * NBD_OPT_STARTTLS (proto.md "TLS support"): the first option, before any
 * other is sent in plain text. A server that refuses it does not get the
 * rest of the negotiation in plain text: the connect fails.
 */
async function startTls(io: HandshakeIo, startTlsOnSocket: () => Promise<void>): Promise<void> {
  io.write(optionRequest(NBD_OPT_STARTTLS));
  const r = await readReply(io, NBD_OPT_STARTTLS);
  if (r.type !== NBD_REP_ACK) {
    if (r.type & NBD_REP_FLAG_ERROR) throw replyError('NBD_OPT_STARTTLS (the server offers no TLS; not going on in plain text)', r);
    throw new HandshakeFailure(`unexpected reply ${r.type} to NBD_OPT_STARTTLS`);
  }
  await startTlsOnSocket();
}

async function structuredReply(io: HandshakeIo): Promise<boolean> {
  io.write(optionRequest(NBD_OPT_STRUCTURED_REPLY));
  const r = await readReply(io, NBD_OPT_STRUCTURED_REPLY);
  if (r.type === NBD_REP_ACK) return true;
  if (r.type & NBD_REP_FLAG_ERROR) {
    if (r.type === NBD_REP_ERR_TLS_REQD) throw replyError('NBD_OPT_STRUCTURED_REPLY', r);
    return false; // fall back to simple replies
  }
  throw new HandshakeFailure(`unexpected reply ${r.type} to NBD_OPT_STRUCTURED_REPLY`);
}

async function setMetaContexts(io: HandshakeIo, exportName: string, queries: readonly string[], required: boolean): Promise<Map<string, number>> {
  const parts = [lengthPrefixed(exportName), Buffer.alloc(4)];
  parts[1].writeUInt32BE(queries.length, 0);
  for (const q of queries) parts.push(lengthPrefixed(q));
  io.write(optionRequest(NBD_OPT_SET_META_CONTEXT, Buffer.concat(parts)));
  const contexts = new Map<string, number>();
  for (;;) {
    const r = await readReply(io, NBD_OPT_SET_META_CONTEXT);
    if (r.type === NBD_REP_ACK) return contexts;
    if (r.type === NBD_REP_META_CONTEXT && r.data.length >= 4) {
      contexts.set(r.data.subarray(4).toString('utf8'), r.data.readUInt32BE(0));
      continue;
    }
    if (r.type & NBD_REP_FLAG_ERROR) {
      if (required || r.type === NBD_REP_ERR_TLS_REQD) throw replyError('NBD_OPT_SET_META_CONTEXT', r);
      return contexts; // only optional contexts asked: the server simply has none
    }
    throw new HandshakeFailure(`unexpected reply ${r.type} to NBD_OPT_SET_META_CONTEXT`);
  }
}

/** NBD_OPT_GO; returns undefined when the server does not know OPT_GO. */
async function go(io: HandshakeIo, exportName: string): Promise<Omit<ExportInfo, 'structuredReplies' | 'metaContexts'> | undefined> {
  const name = lengthPrefixed(exportName);
  // Ask for the block size info: by asking we also promise to honour it.
  const infos = Buffer.allocUnsafe(2 + 2 * 2);
  infos.writeUInt16BE(2, 0);
  infos.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 2);
  infos.writeUInt16BE(NBD_INFO_DESCRIPTION, 4);
  io.write(optionRequest(NBD_OPT_GO, Buffer.concat([name, infos])));
  let size = -1;
  let flags = 0;
  let minBlock = 1;
  let preferredBlock = 4096;
  let maxBlock = DEFAULT_MAX_BLOCK;
  let description: string | undefined;
  for (;;) {
    const r = await readReply(io, NBD_OPT_GO);
    if (r.type === NBD_REP_ACK) break;
    if (r.type === NBD_REP_INFO && r.data.length >= 2) {
      const infoType = r.data.readUInt16BE(0);
      if (infoType === NBD_INFO_EXPORT && r.data.length >= 12) {
        size = readU64(r.data, 2);
        flags = r.data.readUInt16BE(10);
      } else if (infoType === NBD_INFO_BLOCK_SIZE && r.data.length >= 14) {
        minBlock = r.data.readUInt32BE(2);
        preferredBlock = r.data.readUInt32BE(6);
        maxBlock = r.data.readUInt32BE(10);
      } else if (infoType === NBD_INFO_DESCRIPTION) {
        description = r.data.subarray(2).toString('utf8');
      }
      continue;
    }
    if (r.type === NBD_REP_ERR_UNSUP) return undefined;
    if (r.type & NBD_REP_FLAG_ERROR) throw replyError(`NBD_OPT_GO for export "${exportName}"`, r);
    // Unknown non-error replies must be ignored (spec).
  }
  if (size < 0) throw new HandshakeFailure('server acknowledged NBD_OPT_GO without NBD_INFO_EXPORT');
  return { exportName, description, size, flags, minBlock, preferredBlock, maxBlock };
}

/** Legacy NBD_OPT_EXPORT_NAME for servers without OPT_GO. */
async function exportNameOption(io: HandshakeIo, exportName: string, noZeroes: boolean) {
  io.write(optionRequest(NBD_OPT_EXPORT_NAME, Buffer.from(exportName, 'utf8')));
  const r = await io.readExact(noZeroes ? 10 : 134).catch(() => {
    // The only way a server can refuse EXPORT_NAME is to hang up.
    throw new HandshakeFailure(`server closed the connection: no export "${exportName}"?`);
  });
  return {
    exportName,
    size: readU64(r, 0),
    flags: r.readUInt16BE(8),
    minBlock: 1,
    preferredBlock: 4096,
    maxBlock: DEFAULT_MAX_BLOCK,
  };
}

export async function negotiate(io: HandshakeIo, opts: NegotiateOptions): Promise<ExportInfo> {
  const { noZeroes } = await greet(io);
  if (io.startTls) await startTls(io, io.startTls);
  const wantStructured = opts.structuredReplies ?? true;
  const structured = wantStructured ? await structuredReply(io) : false;
  let metaContexts = new Map<string, number>();
  const queries = opts.metaContexts ?? [];
  if (queries.length && !structured) {
    throw new HandshakeFailure(`meta contexts (${queries.join(', ')}) need structured replies, which the server refused`);
  }
  const optional = structured ? (opts.optionalMetaContexts ?? []).filter((q) => !queries.includes(q)) : [];
  if (queries.length || optional.length) {
    metaContexts = await setMetaContexts(io, opts.exportName, [...queries, ...optional], queries.length > 0);
    const missing = queries.filter((q) => !metaContexts.has(q));
    if (missing.length) {
      throw new HandshakeFailure(`server does not provide meta context ${missing.join(', ')}`);
    }
  }
  const info = (await go(io, opts.exportName)) ?? (await exportNameOption(io, opts.exportName, noZeroes));
  return { ...info, structuredReplies: structured, metaContexts };
}

/** NBD_OPT_LIST then NBD_OPT_ABORT. */
export async function listExportsOverIo(io: HandshakeIo): Promise<ExportListing[]> {
  await greet(io);
  if (io.startTls) await startTls(io, io.startTls);
  io.write(optionRequest(NBD_OPT_LIST));
  const out: ExportListing[] = [];
  for (;;) {
    const r = await readReply(io, NBD_OPT_LIST);
    if (r.type === NBD_REP_ACK) break;
    if (r.type === NBD_REP_SERVER && r.data.length >= 4) {
      const n = r.data.readUInt32BE(0);
      out.push({
        name: r.data.subarray(4, 4 + n).toString('utf8'),
        description: r.data.subarray(4 + n).toString('utf8'),
      });
      continue;
    }
    if (r.type & NBD_REP_FLAG_ERROR) throw replyError('NBD_OPT_LIST', r);
  }
  io.write(optionRequest(NBD_OPT_ABORT));
  return out;
}
