/**
 * Wire constants of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md).
 * Only the parts this client speaks are listed; names follow the spec so a
 * reader can grep the spec for them.
 */

/** "NBDMAGIC": first 8 bytes a server sends. */
export const NBD_INIT_MAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": newstyle negotiation magic (server greeting and every option). */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n;
/** Oldstyle negotiation magic: we refuse it (no export names, no options). */
export const NBD_CLISERV_MAGIC = 0x00420281861253n;
/** Magic that starts every option reply. */
export const NBD_REP_MAGIC = 0x3e889045565a9n;

export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

/** Option types. */
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;

/** Option reply types. Errors have bit 31 set. */
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_FLAG_ERROR = 0x80000000;
export const NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR + 1;
export const NBD_REP_ERR_POLICY = NBD_REP_FLAG_ERROR + 2;
export const NBD_REP_ERR_INVALID = NBD_REP_FLAG_ERROR + 3;
export const NBD_REP_ERR_PLATFORM = NBD_REP_FLAG_ERROR + 4;
export const NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR + 5;
export const NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR + 6;
export const NBD_REP_ERR_SHUTDOWN = NBD_REP_FLAG_ERROR + 7;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = NBD_REP_FLAG_ERROR + 8;
export const NBD_REP_ERR_TOO_BIG = NBD_REP_FLAG_ERROR + 9;

export const OPTION_REPLY_ERRORS: Readonly<Record<number, string>> = {
  [NBD_REP_ERR_UNSUP]: 'NBD_REP_ERR_UNSUP (option not supported)',
  [NBD_REP_ERR_POLICY]: 'NBD_REP_ERR_POLICY (forbidden by server policy)',
  [NBD_REP_ERR_INVALID]: 'NBD_REP_ERR_INVALID (invalid option)',
  [NBD_REP_ERR_PLATFORM]: 'NBD_REP_ERR_PLATFORM (not supported on this platform)',
  [NBD_REP_ERR_TLS_REQD]: 'NBD_REP_ERR_TLS_REQD (server requires TLS)',
  [NBD_REP_ERR_UNKNOWN]: 'NBD_REP_ERR_UNKNOWN (no such export)',
  [NBD_REP_ERR_SHUTDOWN]: 'NBD_REP_ERR_SHUTDOWN (server is shutting down)',
  [NBD_REP_ERR_BLOCK_SIZE_REQD]: 'NBD_REP_ERR_BLOCK_SIZE_REQD (server requires block size negotiation)',
  [NBD_REP_ERR_TOO_BIG]: 'NBD_REP_ERR_TOO_BIG (request too big)',
};

/** NBD_INFO_* types used with NBD_OPT_GO / NBD_REP_INFO. */
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

/** Transmission flags (per export). */
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_RESIZE = 1 << 9;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

/** Commands. */
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

export const COMMAND_NAMES: Readonly<Record<number, string>> = {
  [NBD_CMD_READ]: 'READ',
  [NBD_CMD_WRITE]: 'WRITE',
  [NBD_CMD_DISC]: 'DISC',
  [NBD_CMD_FLUSH]: 'FLUSH',
  [NBD_CMD_TRIM]: 'TRIM',
  [NBD_CMD_CACHE]: 'CACHE',
  [NBD_CMD_WRITE_ZEROES]: 'WRITE_ZEROES',
  [NBD_CMD_BLOCK_STATUS]: 'BLOCK_STATUS',
};

/** Command flags. */
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

/** Structured reply flags and chunk types. */
export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

/** base:allocation extent flags. */
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;
/** qemu:dirty-bitmap:NAME extent flag. */
export const NBD_STATE_DIRTY = 1 << 0;

/** Error values on the wire (fixed by the spec, not the host's errno). */
export const NBD_ERRORS: Readonly<Record<number, readonly [string, string]>> = {
  1: ['EPERM', 'Operation not permitted'],
  5: ['EIO', 'Input/output error'],
  12: ['ENOMEM', 'Cannot allocate memory'],
  22: ['EINVAL', 'Invalid argument'],
  28: ['ENOSPC', 'No space left on device'],
  75: ['EOVERFLOW', 'Value too large'],
  95: ['ENOTSUP', 'Operation not supported'],
  108: ['ESHUTDOWN', 'Server is shutting down'],
};

export const REQUEST_HEADER_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_REPLY_SIZE = 20;

/** Spec default when the server does not state a maximum block size. */
export const DEFAULT_MAX_BLOCK = 32 * 1024 * 1024;

export const CONTEXT_BASE_ALLOCATION = 'base:allocation';
export const dirtyBitmapContext = (bitmap: string): string => `qemu:dirty-bitmap:${bitmap}`;

/** Read a u64 that fits in a JS number (disk offsets < 2^53) without BigInt. */
export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 0x100000000 + buf.readUInt32BE(at + 4);
}

export function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x100000000), at);
  buf.writeUInt32BE(value >>> 0, at + 4);
}
