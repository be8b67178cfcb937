export { NbdClient, listExports } from './lib/nbd-client';
export type { NbdClientOptions, WriteFlags, WriteZeroesFlags, BlockStatusExtent } from './lib/nbd-client';
export type { ExportInfo, ExportListing } from './lib/nbd-handshake';
export type { ReadReply, StatusExtent, StatusReply, NbdTlsPsk } from './lib/nbd-connection';
export { NBD_TLS_PSK_CIPHERS } from './lib/nbd-connection';
export { NbdError, NbdCommandError, NbdConnectionError, NbdHandshakeError, isRetryable } from './lib/nbd-errors';
export { parseNbdUri, formatNbdUri, NBD_DEFAULT_PORT } from './lib/nbd-uri';
export type { NbdAddress } from './lib/nbd-uri';
export { allocatedExtents, dirtyExtents, normalizeExtents, totalBytes } from './lib/extents';
export type { Extent, RangeOptions } from './lib/extents';
export {
  copyExtents,
  DEFAULT_REQUEST_SIZE,
  DEFAULT_QUEUE_DEPTH,
  DEFAULT_CONNECTIONS,
} from './lib/extent-copier';
export type { CopyOptions, CopyProgress, CopyResult, RetryOptions } from './lib/extent-copier';
export {
  CONTEXT_BASE_ALLOCATION,
  dirtyBitmapContext,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
  NBD_STATE_DIRTY,
} from './lib/nbd-protocol';
