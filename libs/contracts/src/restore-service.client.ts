import {
  RESTORE_SERVICE_ROUTES,
  type ImagesInUseResponse,
  type ListFilesQuery,
  type ListMountsResponse,
  type ListPage,
  type FileEntry,
  type ImageDownloadQuery,
  type MountInfo,
  type MountRequestBody,
  type RestoreServiceErrorBody,
  type RestoreServiceHealth,
} from './restore-service.contract';

/**
 * The restore-service answered with an error status (its JSON body kept), or
 * could not be reached at all (status 503, body made up here).
 */
export class RestoreServiceError extends Error {
  constructor(
    readonly status: number,
    readonly body: RestoreServiceErrorBody,
    /** False when the service did not answer (connection refused, timeout). */
    readonly reachable: boolean,
  ) {
    super(Array.isArray(body.message) ? body.message.join('; ') : body.message);
    this.name = 'RestoreServiceError';
  }
}

export interface RestoreServiceClientOptions {
  /** RESTORE_SERVICE_URL of the caller's settings, e.g. http://127.0.0.1:8092. */
  baseUrl: string;
  /** Per-request timeout of JSON calls (default 30 s). */
  timeoutMs?: number;
  /** Mounting a long chain takes seconds (default 120 s). */
  mountTimeoutMs?: number;
  /** Extra headers on every request (e.g. internal authentication). */
  headers?: Record<string, string>;
  /** For tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

export interface StreamOptions {
  /** A Range header to pass on (bytes=...). */
  range?: string;
  /** Aborts the upstream request (e.g. when the downstream client goes away). */
  signal?: AbortSignal;
}

/**
 * Typed client of the restore-service's HTTP API for the gateway:
 *
 *   const rs = new RestoreServiceClient({ baseUrl: settings.RESTORE_SERVICE_URL });
 *   const m = await rs.mount({ imagePath, reuse: true, mountId });
 *   const page = await rs.files(m.mountId, { path: 'p1/etc' });
 *   const res = await rs.download(m.mountId, 'p1/etc/hosts', { range: 'bytes=0-99' });  // streamed
 */
export class RestoreServiceClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly mountTimeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly fetchFn: typeof fetch;

  constructor(options: RestoreServiceClientOptions) {
    const url = new URL(options.baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`restore-service address ${options.baseUrl} is not http(s)://host:port`);
    }
    this.baseUrl = options.baseUrl;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.mountTimeoutMs = options.mountTimeoutMs ?? 120_000;
    this.headers = options.headers ?? {};
    this.fetchFn = options.fetch ?? fetch;
  }

  url(route: string): string {
    return new URL(route, this.baseUrl).toString();
  }

  health(): Promise<RestoreServiceHealth> {
    return this.json('GET', RESTORE_SERVICE_ROUTES.health());
  }

  mount(body: MountRequestBody): Promise<MountInfo> {
    return this.json('POST', RESTORE_SERVICE_ROUTES.mount(), body, this.mountTimeoutMs);
  }

  async list(): Promise<MountInfo[]> {
    const res = await this.json<ListMountsResponse>('GET', RESTORE_SERVICE_ROUTES.list());
    return res.mounts;
  }

  get(mountId: string): Promise<MountInfo> {
    return this.json('GET', RESTORE_SERVICE_ROUTES.get(mountId));
  }

  async imagesInUse(): Promise<string[]> {
    const res = await this.json<ImagesInUseResponse>('GET', RESTORE_SERVICE_ROUTES.imagesInUse());
    return res.images;
  }

  files(mountId: string, query: ListFilesQuery = {}): Promise<ListPage> {
    return this.json('GET', RESTORE_SERVICE_ROUTES.files(mountId, query));
  }

  stat(mountId: string, path: string): Promise<FileEntry> {
    return this.json('GET', RESTORE_SERVICE_ROUTES.stat(mountId, path));
  }

  async unmount(mountId: string): Promise<void> {
    await this.json<undefined>('DELETE', RESTORE_SERVICE_ROUTES.unmount(mountId));
  }

  /**
   * A file as the service answers it (200 or 206 with Content-Range, or an
   * error status with its JSON body): the caller streams `body` on. Throws
   * RestoreServiceError only when the service cannot be reached.
   */
  download(mountId: string, path: string, options: StreamOptions = {}): Promise<Response> {
    return this.stream(RESTORE_SERVICE_ROUTES.download(mountId, path), options);
  }

  /** A directory as a streamed tar (see download for the answer). */
  archive(mountId: string, path: string, options: StreamOptions = {}): Promise<Response> {
    return this.stream(RESTORE_SERVICE_ROUTES.archive(mountId, path), options);
  }

  /**
   * A restore point's whole disk as one image (raw honours `range`; qcow2 and
   * vmdk are converted first, so the answer can take a while to start).
   * Aborting `signal` stops the conversion. See download for the answer.
   */
  image(query: ImageDownloadQuery, options: StreamOptions = {}): Promise<Response> {
    return this.stream(RESTORE_SERVICE_ROUTES.image(query), options);
  }

  private async stream(route: string, options: StreamOptions): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers };
    if (options.range !== undefined) headers['range'] = options.range;
    return this.send(route, { headers, signal: options.signal });
  }

  private async send(route: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetchFn(this.url(route), init);
    } catch (err) {
      const message = `the restore-service at ${this.baseUrl} is not reachable: ${(err as Error).message}`;
      throw new RestoreServiceError(503, { statusCode: 503, error: 'Service Unavailable', message }, false);
    }
  }

  private async json<T>(method: string, route: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const headers: Record<string, string> = { ...this.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await this.send(route, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // A hung service must not hang the caller.
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const errorBody = isErrorBody(json) ? json : { statusCode: res.status, message: text || res.statusText };
      throw new RestoreServiceError(res.status, errorBody, true);
    }
    return json as T;
  }
}

function isErrorBody(value: unknown): value is RestoreServiceErrorBody {
  if (typeof value !== 'object' || value === null) return false;
  const m = (value as { message?: unknown }).message;
  return typeof (value as { statusCode?: unknown }).statusCode === 'number' && (typeof m === 'string' || Array.isArray(m));
}
