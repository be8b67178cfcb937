export * from './queues';
export * from './nbd-exporter.contract';
export * from './capture-agent.contract';
export * from './capture-agent.client';
