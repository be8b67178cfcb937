export * from './database-url';
export * from './prisma-client';
export * from './migrator';
export * from './generated/client';
export * from './api-keys';
export * from './secret-box';
export * from './vm-disks';
