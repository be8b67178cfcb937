import type { NbdServerKind } from '@sendense/contracts';

export interface LaunchSpec {
  name: string;
  filePath: string;
  writable: boolean;
  host: string;
  /** TCP port; unused when socketPath is set. */
  port: number;
  /** Transport unix: listen on this socket instead of host:port (qemu-nbd only). */
  socketPath?: string;
  /** TLS-PSK: the directory holding this export's keys.psk (replaces the x509 credentials). */
  pskDir?: string;
}

/** Raised when the port was taken by someone else between allocation and bind. */
export class PortTakenError extends Error {}

/** Starts one daemonized NBD server for one export and returns its pid. */
export interface ServerLauncher {
  readonly server: NbdServerKind;
  start(spec: LaunchSpec): Promise<number>;
}
