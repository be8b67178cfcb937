export * from './process-runner';
export * from './proc';
