import type { CreateNbdExportRequest } from '@sendense/contracts';

/**
 * How the Capture Agent may open an export of this node (backup targets, the
 * restore point a disk restore reads): NBD_TARGET_TRANSPORT resolved (auto →
 * unix when the agent is on this host) and NBD_TARGET_TLS.
 */
export interface TargetAccess {
  transport: 'tcp' | 'unix';
  tls: 'psk' | 'none';
}

/**
 * The createExport fields for it. A Unix socket needs no TLS: the file system
 * decides who connects (the exporter's sockets dir, NBD_SOCKET_GROUP), and no
 * other host can reach it; over TCP a target without TLS-PSK could be written
 * by any local process, so psk is the default there.
 */
export function exportAccess(a: Partial<TargetAccess> = {}): Pick<CreateNbdExportRequest, 'transport' | 'tls'> {
  return a.transport === 'unix' ? { transport: 'unix', tls: 'none' } : { transport: 'tcp', tls: a.tls ?? 'psk' };
}
