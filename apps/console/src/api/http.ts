/**
 * The API key and the error type every call shares. The key lives in
 * sessionStorage only (gone when the tab closes) and travels in the
 * X-API-Key header, never in a URL.
 */

const KEY = 'sendense.apiKey';

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function storeKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** Called when the gateway answers 401: the session is over. */
let onUnauthorized: (message: string) => void = () => undefined;
export function setUnauthorizedHandler(fn: (message: string) => void): void {
  onUnauthorized = fn;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The gateway's message from a Nest error body: a string, a list of validation messages, or nested. */
export function messageOf(body: unknown, fallback: string): string {
  if (typeof body === 'string' && body.trim()) return body.trim();
  if (body && typeof body === 'object') {
    const m = (body as { message?: unknown }).message;
    if (typeof m === 'string') return m;
    if (Array.isArray(m)) return m.map(String).join('; ');
    if (m && typeof m === 'object') return messageOf(m, fallback);
  }
  return fallback;
}

/** An HTTP failure as an ApiError whose message says why and what to do. */
export function errorOf(status: number, statusText: string, body: unknown): ApiError {
  const said = messageOf(body, statusText || `HTTP ${status}`);
  let message: string;
  if (status === 401) message = `Not logged in: ${said}. Log in again with a valid API key.`;
  else if (status === 403) message = `Not allowed: ${said}.`;
  else if (status === 502 || status === 503 || status === 504) message = `The service is unavailable (${status}): ${said}`;
  else message = said;
  // Only a stored session ends; a key being tried at the login form just fails.
  if (status === 401 && storedKey()) onUnauthorized(message);
  return new ApiError(status, message, body);
}

export function authHeaders(extra?: Record<string, string>, key = storedKey()): Record<string, string> {
  return { ...(key ? { 'X-API-Key': key } : {}), ...extra };
}

/** A raw authenticated request (downloads, server-sent events); the caller reads the body. */
export async function rawFetch(path: string, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers: authHeaders(init.headers as Record<string, string> | undefined), cache: 'no-store' });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, `The gateway cannot be reached: ${(err as Error).message}`, null);
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    throw errorOf(res.status, res.statusText, body);
  }
  return res;
}
