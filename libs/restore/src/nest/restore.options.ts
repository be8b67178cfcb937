import type { FileBrowserOptions } from '../lib/file-browser';
import type { MountManagerOptions } from '../lib/mount-manager';

export const RESTORE_OPTIONS = Symbol('RESTORE_OPTIONS');

export interface RestoreModuleOptions extends MountManagerOptions {
  browser?: FileBrowserOptions;
  /** Scratch space of image downloads (default <runDir>/images). */
  imageWorkDir?: string;
  /** Run cleanupOrphans() on start (default true). */
  cleanupOnStart?: boolean;
}
