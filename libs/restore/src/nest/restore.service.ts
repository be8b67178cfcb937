import { join } from 'node:path';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { FileBrowser } from '../lib/file-browser';
import { ImageDownloader } from '../lib/image-download';
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
  readonly images: ImageDownloader;

  constructor(@Inject(RESTORE_OPTIONS) private readonly options: RestoreModuleOptions) {
    this.manager = new MountManager({ ...options, log: options.log ?? ((m) => this.logger.log(m)) });
    this.browser = new FileBrowser(this.manager, options.browser);
    this.images = new ImageDownloader({
      workDir: options.imageWorkDir ?? join(this.manager.runDir, 'images'),
      allowedImageRoots: options.allowedImageRoots,
      log: options.log ?? ((m) => this.logger.log(m)),
    });
  }

  async onModuleInit(): Promise<void> {
    if (this.options.cleanupOnStart === false) return;
    const left = await this.images.cleanupOrphans();
    if (left) this.logger.warn(`removed ${left} image download(s) a previous run left`);
    const report = await this.manager.cleanupOrphans();
    if (report.errors.length) this.logger.warn(`orphan cleanup incomplete: ${report.errors.join('; ')}`);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.manager.close();
  }
}
