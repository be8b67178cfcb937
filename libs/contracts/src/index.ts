export * from './queues';
export * from './nbd-exporter.contract';
export * from './nbd-exporter.client';
export * from './capture-agent.contract';
export * from './capture-agent.client';
export * from './restore-service.contract';
export * from './restore-service.client';
export * from './internal-auth';
