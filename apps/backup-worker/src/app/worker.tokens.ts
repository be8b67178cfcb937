/** Injection tokens of the worker's providers that are not classes. */
export const SETTINGS = Symbol('SETTINGS');
export const PRISMA = Symbol('PRISMA');
/** The SecretBox of SENDENSE_SECRET_KEY, or null without one. */
export const SECRETS = Symbol('SECRETS');
/** The worker's own ioredis client (VM locks, policy and alert state). */
export const REDIS = Symbol('REDIS');
export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');
export const WORKER_METRICS = Symbol('WORKER_METRICS');
/** Every JobHandler; checked at boot to cover every job name of libs/contracts. */
export const JOB_HANDLERS = Symbol('JOB_HANDLERS');
/** The four queue processors (WorkerHost), in the order their queues are logged. */
export const CONSUMERS = Symbol('CONSUMERS');
/** The BullModule.registerQueue queues of the consumed queues (alert scheduler, queue gauges). */
export const CONSUMED_QUEUES = Symbol('CONSUMED_QUEUES');
