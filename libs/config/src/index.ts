export * from './env-schema';
export * from './settings';
export * from './shutdown';
export * from './bootstrap';
