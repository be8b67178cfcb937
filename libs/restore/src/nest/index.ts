export * from './restore.options';
export * from './restore.service';
export * from './restore-error.filter';
export * from './restore.controller';
export * from './restore.module';
export * from './image.controller';
