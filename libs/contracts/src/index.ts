export * from './queues';
export * from './nbd-exporter.contract';
