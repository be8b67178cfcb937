import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { FileBrowser } from '../lib/file-browser';
import { MountManager } from '../lib/mount-manager';
import { RESTORE_OPTIONS, type RestoreModuleOptions } from './restore.options';

/**
 * Owns the process's MountManager and FileBrowser. Orphans of a crashed
 * predecessor are removed before the app serves requests; a graceful stop
 * unmounts everything (a mount never outlives the service that tracks it).
 */
@Injectable()
export class RestoreService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('RestoreService');
  readonly manager: MountManager;
  readonly browser: FileBrowser;

  constructor(@Inject(RESTORE_OPTIONS) private readonly options: RestoreModuleOptions) {
    this.manager = new MountManager({ ...options, log: options.log ?? ((m) => this.logger.log(m)) });
    this.browser = new FileBrowser(this.manager, options.browser);
  }

  async onModuleInit(): Promise<void> {
    if (this.options.cleanupOnStart === false) return;
    const report = await this.manager.cleanupOrphans();
    if (report.errors.length) this.logger.warn(`orphan cleanup incomplete: ${report.errors.join('; ')}`);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.manager.close();
  }
}
