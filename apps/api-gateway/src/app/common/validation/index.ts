export * from './decorators';
export * from './http';
