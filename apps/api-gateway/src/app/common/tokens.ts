/** DI tokens for values that are not classes. */
export const SETTINGS = Symbol('SETTINGS');
export const PRISMA = Symbol('PRISMA');
export const REDIS = Symbol('REDIS');
