import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { json } from 'express';

/** JSON deeper than this is refused before it is parsed (class-transformer recursed until the stack overflowed). */
export const MAX_JSON_DEPTH = 32;
export const MAX_JSON_BYTES = '1mb';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function send(res: Response, status: number, error: string, message: string): void {
  res.status(status).json({ statusCode: status, message, error });
}

/**
 * Every query parameter once, as a plain string: `?path=a&path=b` and
 * `?path[]=a` are refused with 400 (they used to become arrays that the
 * handlers dropped silently, so `archive` streamed the whole mount).
 */
export function refuseRepeatedQuery(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const q = req.originalUrl.indexOf('?');
    if (q < 0) return next();
    const seen = new Set<string>();
    for (const [name] of new URLSearchParams(req.originalUrl.slice(q + 1))) {
      if (seen.has(name)) return send(res, 400, 'Bad Request', `query parameter "${name}" is given more than once; give it once`);
      if (/[[\]]/.test(name)) return send(res, 400, 'Bad Request', `query parameter "${name}": brackets are not accepted; give plain name=value pairs`);
      seen.add(name);
    }
    next();
  };
}

/**
 * Request bodies are JSON only (415 otherwise): HTML forms can send
 * urlencoded, multipart and text/plain bodies cross-site without a CORS
 * preflight; they cannot send application/json.
 */
export function requireJsonBodies(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody) return next();
    const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase() ?? '';
    if (type !== 'application/json') {
      return send(res, 415, 'Unsupported Media Type', `request bodies must be application/json${type ? ` (got ${type})` : ' (no Content-Type was sent)'}`);
    }
    next();
  };
}

/** Deepest nesting of arrays/objects in a JSON text (strings skipped), stopping early past `limit`. */
export function jsonDepth(buf: Buffer, limit = Number.MAX_SAFE_INTEGER): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > max) max = depth;
      if (max > limit) return max;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** express.json for application/json only, strict (objects and arrays), size- and depth-limited; errors answer as JSON. */
export function jsonBody(): RequestHandler {
  const parse = json({
    type: 'application/json',
    strict: true,
    limit: MAX_JSON_BYTES,
    verify: (_req, _res, buf) => {
      if (jsonDepth(buf, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw new BodyError(400, `JSON nested deeper than ${MAX_JSON_DEPTH} levels is not accepted`);
    },
  });
  return (req: Request, res: Response, next: NextFunction) => {
    parse(req, res, (err?: unknown) => {
      if (!err) return next();
      const e = err as { status?: number; statusCode?: number; type?: string; message?: string };
      const status = e.status ?? e.statusCode ?? 400;
      const message =
        e.type === 'entity.parse.failed'
          ? 'the body is not valid JSON'
          : e.type === 'entity.too.large'
            ? `the body is larger than ${MAX_JSON_BYTES}`
            : (e.message ?? 'the body could not be read');
      send(res, status >= 400 && status < 500 ? status : 400, status === 413 ? 'Payload Too Large' : 'Bad Request', message);
    });
  };
}

/**
 * State-changing requests that a browser marks as coming from another site
 * are refused (403): `Origin` must be the gateway's own origin or one of
 * `allowed`; `Sec-Fetch-Site: cross-site/same-site` is refused unless the
 * Origin is allowed, `same-origin` passes. Requests without either header (curl, the CLI) pass:
 * the REST API takes no browser credentials (no Basic auth, no cookies).
 */
export function originCheck(allowed: string[]): RequestHandler {
  const extra = new Set(allowed.map((o) => o.trim().replace(/\/+$/, '').toLowerCase()).filter(Boolean));
  return (req: Request, res: Response, next: NextFunction) => {
    if (!STATE_CHANGING.has(req.method)) return next();
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    // Sec-Fetch-Site is set by the browser itself (pages cannot forge it).
    if (site === 'same-origin') return next();
    if (origin === undefined && (site === undefined || site === 'none')) return next();
    const own = `${req.protocol}://${req.headers.host ?? ''}`.toLowerCase();
    const o = (origin ?? '').toLowerCase();
    if (o && (o === own || extra.has(o))) return next();
    send(
      res,
      403,
      'Forbidden',
      `cross-origin ${req.method} refused (Origin ${origin ?? 'missing'}, Sec-Fetch-Site ${site ?? 'missing'}); ` +
        'browser pages of other origins may not change anything here (add them to GATEWAY_ALLOWED_ORIGINS if they should)',
    );
  };
}
