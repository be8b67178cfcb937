/**
 * Every call the console makes, through the one typed client
 * (@sendense/api-client, generated from the gateway's OpenAPI document):
 * a renamed path, parameter or body field breaks the type check here.
 */
import { ApiError as ClientError, ApiUnreachableError, createApiClient, RawApi, unwrap, type ApiClient, type paths } from '@sendense/api-client';
import { ApiError, errorOf, storedKey } from './http';
import type {
  ApiKey,
  Backup,
  BackupList,
  BackupType,
  CreatedApiKey,
  CreateExport,
  DiskExport,
  ImageFormat,
  ImportedVm,
  JobStatus,
  ListPage,
  Mount,
  ProgressEvent,
  Repository,
  RepositorySpace,
  RestoreDisk,
  RetentionPolicy,
  StartedBackup,
  StartedRestore,
  VCenter,
  VerifyResult,
  Vm,
  VmChains,
  WhoAmI,
} from './types';

const origin = () => window.location.origin;

let cached: { key: string | null; client: ApiClient; raw: RawApi } | null = null;
function clients(key = storedKey()): { client: ApiClient; raw: RawApi } {
  if (!cached || cached.key !== key) {
    // fetch called as a method of another object throws "Illegal invocation" in browsers: always call it as a plain function.
    const o = { baseUrl: origin(), fetch: (input: RequestInfo | URL, init?: RequestInit) => window.fetch(input, init), ...(key ? { apiKey: key } : {}) };
    cached = { key, client: createApiClient(o), raw: new RawApi(o) };
  }
  return cached;
}
const c = () => clients().client;

/** The client's errors as the console shows them (401/403 say why, and 401 ends the session). */
function translate(err: unknown): never {
  if (err instanceof ClientError) throw errorOf(err.status, '', err.body ?? err.message);
  if (err instanceof ApiUnreachableError) throw new ApiError(0, `The gateway cannot be reached: ${err.message}`, null);
  throw err;
}

interface Result {
  data?: unknown;
  error?: unknown;
  response: Response;
}
/**
 * The data of a 2xx answer, as the type the console reads (types.ts: the
 * OpenAPI document's own schemas).
 */
async function call<T>(p: Promise<Result>): Promise<T> {
  try {
    return (await unwrap(p)) as T;
  } catch (err) {
    return translate(err);
  }
}

/** A documented path with its parameters filled in (a path the gateway dropped does not compile). */
export function pathOf<P extends keyof paths>(template: P, params: Record<string, string> = {}): string {
  return (template as string).replace(/\{(\w+)\}/g, (_, k: string) => {
    const v = params[k];
    if (v === undefined) throw new Error(`pathOf: ${template} needs ${k}`);
    return encodeURIComponent(v);
  });
}

async function raw(method: string, path: string, init: Parameters<RawApi['request']>[2] = {}): Promise<Response> {
  try {
    return await clients().raw.request(method, path, init);
  } catch (err) {
    return translate(err);
  }
}

export const api = {
  /** Checks a key before it is stored: who it is and its role. */
  whoami: (key?: string) => {
    const client = key === undefined ? c() : clients(key).client;
    return call<WhoAmI>(client.GET('/api/v1/auth/whoami'));
  },

  vms: () => call<Vm[]>(c().GET('/api/v1/vms')),
  backups: (query: { vm_context_id?: string; status?: Backup['status']; limit?: number; offset?: number } = {}) =>
    call<BackupList>(c().GET('/api/v1/backup/list', { params: { query } })),
  backup: (id: string) => call<Backup & { chain: string[]; dependents: string[] }>(c().GET('/api/v1/backup/{id}', { params: { path: { id } } })),
  chains: (vmContextId: string) => call<VmChains>(c().GET('/api/v1/backup/chain', { params: { query: { vm_context_id: vmContextId } } })),
  startBackup: (body: { vm_context_id: string; backup_type: BackupType; repository?: string }) =>
    call<StartedBackup>(c().POST('/api/v1/backup/start', { body })),
  verify: (id: string) => call<VerifyResult>(c().POST('/api/v1/backup/{id}/verify', { params: { path: { id } } })),
  deleteBackup: (id: string) => call<void>(c().DELETE('/api/v1/backup/{id}', { params: { path: { id } } })),
  consolidate: (body: { vm_context_id: string; disk_id: number; up_to_backup_id?: string }) =>
    call<{ survivorId?: string; removedIds?: string[]; rebasedIds?: string[] }>(c().POST('/api/v1/backup/chain/consolidate', { body })),

  job: (runId: string) => call<JobStatus>(c().GET('/api/v1/jobs/{runId}', { params: { path: { runId } } })),
  cancelJob: (runId: string) => call<{ run_id: string; status: string }>(c().POST('/api/v1/jobs/{runId}/cancel', { params: { path: { runId } } })),
  /**
   * Live progress (server-sent events read with fetch, so the key goes in a
   * header: EventSource cannot send one). Calls onEvent per progress event;
   * resolves when the job ends or the signal aborts.
   */
  async followJob(runId: string, onEvent: (e: ProgressEvent) => void, signal: AbortSignal): Promise<void> {
    const path = pathOf('/api/v1/jobs/{runId}/progress', { runId });
    try {
      for await (const ev of clients().raw.events(path, signal)) {
        if (ev.event === 'progress') onEvent(JSON.parse(ev.data) as ProgressEvent);
        if (ev.event === 'end') return;
      }
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      translate(err);
    }
  },

  repositories: () => call<Repository[]>(c().GET('/api/v1/repositories')),
  space: (id: string) => call<RepositorySpace>(c().GET('/api/v1/repositories/{id}/space', { params: { path: { id } } })),
  createRepository: (body: { name: string; type: 'local'; path: string; storage_node?: string }) =>
    call<Repository>(c().POST('/api/v1/repositories', { body })),

  vcenters: () => call<VCenter[]>(c().GET('/api/v1/vcenters')),
  addVCenter: (body: { name: string; url: string; username: string; password: string; insecure?: boolean; thumbprint?: string }) =>
    call<VCenter>(c().POST('/api/v1/vcenters', { body })),
  importVms: (id: string, vmNames?: string[]) =>
    call<ImportedVm[]>(c().POST('/api/v1/vcenters/{id}/import', { params: { path: { id } }, body: vmNames?.length ? { vm_names: vmNames } : {} })),

  policies: () => call<RetentionPolicy[]>(c().GET('/api/v1/retention/policy')),
  setPolicy: (body: { repository: string; vm_context_id?: string; keep_last: number; daily: number; weekly: number; monthly: number }) =>
    call<RetentionPolicy>(c().PUT('/api/v1/retention/policy', { body })),
  applyRetention: (body: { repository: string; vm_context_id?: string; dry_run: boolean }) =>
    call<Record<string, unknown>>(c().POST('/api/v1/retention/apply', { body })),

  apiKeys: () => call<ApiKey[]>(c().GET('/api/v1/apikeys')),
  createApiKey: (body: { name: string; role: ApiKey['role'] }) => call<CreatedApiKey>(c().POST('/api/v1/apikeys', { body })),
  revokeApiKey: (id: string) => call<void>(c().DELETE('/api/v1/apikeys/{id}', { params: { path: { id } } })),

  mounts: () => call<Mount[]>(c().GET('/api/v1/restore/mounts')),
  mount: (backupId: string) => call<Mount>(c().POST('/api/v1/restore/mount', { body: { backup_id: backupId } })),
  unmount: (mountId: string) => call<void>(c().DELETE('/api/v1/restore/{mountId}', { params: { path: { mountId } } })),
  files: (mountId: string, path: string, offset: number, limit: number) =>
    call<ListPage>(
      c().GET('/api/v1/restore/{mountId}/files', { params: { path: { mountId }, query: { path, offset: String(offset), limit: String(limit) } } }),
    ),
  /** A file or a directory archive as a Blob (the key travels in a header, so no plain link). */
  async download(mountId: string, path: string, kind: 'file' | 'archive', signal?: AbortSignal): Promise<Blob> {
    const template = kind === 'file' ? '/api/v1/restore/{mountId}/download' : '/api/v1/restore/{mountId}/archive';
    const res = await raw('GET', pathOf(template, { mountId }), { query: { path }, ...(signal ? { signal } : {}) });
    return res.blob();
  },

  /** Instant access: the restore point's whole chain served over NBD (read-only, or writable through a temporary overlay). */
  exports: (backupId?: string) => call<DiskExport[]>(c().GET('/api/v1/restore/export', { params: { query: backupId ? { backup_id: backupId } : {} } })),
  startExport: (body: CreateExport) => call<DiskExport>(c().POST('/api/v1/restore/export', { body })),
  endExport: (name: string) => call<void>(c().DELETE('/api/v1/restore/export/{name}', { params: { path: { name } } })),
  /** The restore point's disk as one image (converted on the storage node first for qcow2/vmdk), as a Blob. */
  async image(backupId: string, format: ImageFormat, signal?: AbortSignal): Promise<Blob> {
    const res = await raw('GET', pathOf('/api/v1/backup/{id}/image', { id: backupId }), { query: { format }, ...(signal ? { signal } : {}) });
    return res.blob();
  },
  /** Write a restore point back into a disk of a powered-off VM; the answer names the run to follow. */
  restoreDisk: (body: RestoreDisk) => call<StartedRestore>(c().POST('/api/v1/restore/disk', { body })),
};
