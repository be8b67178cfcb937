import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiBearerAuth, ApiSecurity } from '@nestjs/swagger';
import type { ApiRole } from '@sendense/db';
import { ApiAuthErrors } from '../common/error-responses';

export const ROLES_KEY = 'sendense:roles';
export const PUBLIC_KEY = 'sendense:public';

/**
 * Declares who may call an endpoint, and documents it (security schemes and
 * the 401/403 answers) in the OpenAPI document.
 */
export function Roles(...roles: ApiRole[]) {
  return applyDecorators(
    SetMetadata(ROLES_KEY, roles),
    ApiBearerAuth('bearer'),
    ApiSecurity('api-key'),
    ApiAuthErrors(),
  );
}

/** No key needed (health checks for load balancers). */
export const Public = () => SetMetadata(PUBLIC_KEY, true);

export const READ_ROLES: ApiRole[] = ['admin', 'operator', 'viewer'];
export const WRITE_ROLES: ApiRole[] = ['admin', 'operator'];
export const ADMIN_ROLES: ApiRole[] = ['admin'];
