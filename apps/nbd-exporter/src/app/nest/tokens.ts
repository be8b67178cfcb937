/** Injection tokens. Explicit tokens (not constructor types) keep DI working without emitted decorator metadata. */
export const EXPORTER_CONFIG = Symbol('EXPORTER_CONFIG');
export const EXPORT_MANAGER = Symbol('EXPORT_MANAGER');
export const RECORD_STORE_HANDLE = Symbol('RECORD_STORE_HANDLE');
export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');
