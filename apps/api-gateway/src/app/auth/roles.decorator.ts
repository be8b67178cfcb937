import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiBearerAuth, ApiExtension, ApiResponse, ApiSecurity } from '@nestjs/swagger';
import type { ApiRole } from '@sendense/db';
import { ApiAuthErrors, ErrorResponseDto } from '../common/error-responses';

export const ROLES_KEY = 'sendense:roles';
export const PUBLIC_KEY = 'sendense:public';
export const EXPENSIVE_KEY = 'sendense:expensive';

/** The OpenAPI extension naming the roles an operation admits (the authorization-matrix test reads it). */
export const ROLES_EXTENSION = 'x-sendense-roles';

/**
 * Declares who may call an endpoint, and documents it (security schemes, the
 * roles as `x-sendense-roles`, and the 401/403 answers) in the OpenAPI document.
 */
export function Roles(...roles: ApiRole[]) {
  return applyDecorators(SetMetadata(ROLES_KEY, roles), ApiExtension(ROLES_EXTENSION, roles), ApiBearerAuth('bearer'), ApiSecurity('api-key'), ApiAuthErrors());
}

/** No key needed (health checks for load balancers). */
export const Public = () => applyDecorators(SetMetadata(PUBLIC_KEY, true), ApiExtension(ROLES_EXTENSION, ['public']));

/**
 * Starts work that costs the host (a backup, a mount): counted per API key
 * (GATEWAY_EXPENSIVE_CALLS_PER_MINUTE), 429 above it.
 */
export const Expensive = (what: string) =>
  applyDecorators(
    SetMetadata(EXPENSIVE_KEY, what),
    ApiResponse({ status: 429, description: 'This key started too many backups or mounts in the last minute', type: ErrorResponseDto }),
  );

export const READ_ROLES: ApiRole[] = ['admin', 'operator', 'viewer'];
export const WRITE_ROLES: ApiRole[] = ['admin', 'operator'];
export const ADMIN_ROLES: ApiRole[] = ['admin'];
/**
 * The `restore` permission: reading guest file content (browse, download,
 * archive) from a mounted restore point. Guest files can hold secrets, so
 * viewers see metadata only (backups, chains, the list of mounts).
 */
export const RESTORE_ROLES: ApiRole[] = ['admin', 'operator'];
