export * from './env-schema';
export * from './settings';
