import type { NextFunction, Request, Response } from 'express';
import { HttpException } from '@nestjs/common';
import type { ApiRole } from '@sendense/db';
import { ApiKeyService, type Principal } from './api-key.service';
import { clientAddress } from './api-key.guard';
import type { RequestLimiter } from './request-limiter.service';

export type BrowserRequest = Request & { principal?: Principal };

/**
 * For pages a browser opens (console, Swagger UI, Bull Board): the same API
 * keys, also accepted as the password of HTTP Basic auth so the browser can
 * prompt. Only these pages take Basic auth; their state-changing requests
 * are covered by the Origin check (`originCheck`). `roles` may depend on the
 * request (Bull Board: reading vs acting).
 */
export function browserAuth(keys: ApiKeyService, limiter: RequestLimiter, roles: ApiRole[] | ((req: Request) => ApiRole[])) {
  return (req: BrowserRequest, res: Response, next: NextFunction): void => {
    const deny = (status: number, message: string) => {
      if (status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="sendense", charset="UTF-8"');
      const error = status === 401 ? 'Unauthorized' : status === 429 ? 'Too Many Requests' : 'Forbidden';
      res.status(status).json({ statusCode: status, message, error });
    };
    const ip = clientAddress(req);
    try {
      limiter.assertNotBlocked(ip);
    } catch (err) {
      return deny((err as HttpException).getStatus(), (err as HttpException).message);
    }
    const key = ApiKeyService.extractKey(req.headers, { allowBasic: true });
    if (!key) return deny(401, 'an API key is required (Bearer, X-API-Key, or as the Basic auth password)');
    keys
      .authenticate(key)
      .then(async (p) => {
        if (!p) {
          if (await limiter.failed(ip)) return deny(429, `too many failed authentications from ${ip}; try again in a minute`);
          return deny(401, 'the API key is invalid or revoked');
        }
        const allowed = typeof roles === 'function' ? roles(req) : roles;
        if (!allowed.includes(p.role)) {
          return deny(403, `this needs one of the roles ${allowed.join(', ')}; your key has ${p.role}`);
        }
        req.principal = p;
        next();
      })
      .catch(next);
  };
}
