export * from './metrics';
export { Counter, Gauge, Histogram, Registry } from 'prom-client';
