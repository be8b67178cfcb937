import type { NextFunction, Request, Response } from 'express';
import type { ApiRole } from '@sendense/db';
import { ApiKeyService } from './api-key.service';

/**
 * For pages a browser opens (Swagger UI, Bull Board): the same API keys, also
 * accepted as the password of HTTP Basic auth so the browser can prompt.
 */
export function browserAuth(keys: ApiKeyService, roles: ApiRole[]) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const key = ApiKeyService.extractKey(req.headers);
    const deny = (status: number, message: string) => {
      if (status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="sendense", charset="UTF-8"');
      res.status(status).json({ statusCode: status, message, error: status === 401 ? 'Unauthorized' : 'Forbidden' });
    };
    if (!key) return deny(401, 'an API key is required (Bearer, X-API-Key, or as the Basic auth password)');
    keys
      .authenticate(key)
      .then((p) => {
        if (!p) return deny(401, 'the API key is invalid or revoked');
        if (!roles.includes(p.role)) return deny(403, `this page needs one of the roles ${roles.join(', ')}; your key has ${p.role}`);
        next();
      })
      .catch(next);
  };
}
