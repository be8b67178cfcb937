import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { bootstrapService, EXIT_CONFIG, logLevels } from './bootstrap';
import { ConfigError } from './env-schema';
import { loadRestoreSettings } from './settings';

@Module({})
class EmptyModule {}

describe('bootstrapService', () => {
  let stderr: jest.SpyInstance;
  beforeEach(() => {
    stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => stderr.mockRestore());

  it('maps LOG_LEVEL to the Nest levels at or above it', () => {
    expect(logLevels('error')).toEqual(['fatal', 'error']);
    expect(logLevels('log')).toEqual(['fatal', 'error', 'warn', 'log']);
    expect(logLevels('verbose')).toHaveLength(6);
  });

  it('stops with exit 78 and the message when a setting is invalid, without creating anything', async () => {
    const exit = jest.fn();
    const create = jest.fn();
    const app = await bootstrapService(
      { name: 'svc', loadSettings: () => loadRestoreSettings({ RESTORE_SERVICE_PORT: 'x' }), create, started: () => 'up' },
      exit,
    );
    expect(app).toBeUndefined();
    expect(exit).toHaveBeenCalledWith(EXIT_CONFIG);
    expect(create).not.toHaveBeenCalled();
    expect(stderr.mock.calls.join('')).toContain('svc: invalid configuration:\n  RESTORE_SERVICE_PORT="x" is invalid');
    expect(new ConfigError(['a']).message).toContain('a');
  });

  it('exits 1 with the stack when the app fails to start', async () => {
    const exit = jest.fn();
    await bootstrapService(
      { name: 'svc', loadSettings: () => loadRestoreSettings({}), create: () => Promise.reject(new Error('port in use')), started: () => 'up' },
      exit,
    );
    expect(exit).toHaveBeenCalledWith(1);
    expect(stderr.mock.calls.join('')).toContain('svc failed to start: Error: port in use');
  });

  it('creates, listens and returns the app', async () => {
    const exit = jest.fn();
    const listen = jest.fn(async () => undefined);
    const app = await bootstrapService(
      {
        name: 'svc',
        loadSettings: () => loadRestoreSettings({ LOG_LEVEL: 'error' }),
        create: () => NestFactory.createApplicationContext(EmptyModule, { logger: false }),
        listen,
        started: (s) => `svc on ${s.RESTORE_SERVICE_PORT}`,
      },
      exit,
    );
    try {
      expect(app).toBeDefined();
      expect(listen).toHaveBeenCalledWith(app, expect.objectContaining({ RESTORE_SERVICE_PORT: 8092 }));
      expect(exit).not.toHaveBeenCalled();
    } finally {
      await app?.close();
      process.removeAllListeners('SIGTERM');
      process.removeAllListeners('SIGINT');
    }
  });
});
