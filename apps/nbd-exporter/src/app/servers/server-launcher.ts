import type { NbdServerKind } from '@sendense/contracts';

export interface LaunchSpec {
  name: string;
  filePath: string;
  writable: boolean;
  host: string;
  port: number;
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
