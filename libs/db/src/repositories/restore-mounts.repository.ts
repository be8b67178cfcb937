import type { PrismaClient } from '../prisma-client';
import type { MountState, Prisma, RestoreMount } from '../generated/client';

/** States in which a mount holds its restore point's chain (maintenance must not merge or delete it). */
export const MOUNT_HOLDING_STATES: readonly MountState[] = ['mounting', 'mounted', 'unmounting'];

/**
 * The restore_mounts table: which restore points are mounted for file-level
 * restore on which node. A row exists from before the mount starts until the
 * mount is gone, so maintenance never sees a chain as free while it is in use.
 */
export class RestoreMountRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** Recorded before mounting (state mounting). */
  async createPending(m: { id: string; backupId: string; nodeName: string }): Promise<void> {
    await this.prisma.restoreMount.create({ data: { ...m, mountPath: '', state: 'mounting' } });
  }

  async markMounted(id: string, mountPath: string, partitions: unknown): Promise<void> {
    await this.prisma.restoreMount.update({ where: { id }, data: { mountPath, state: 'mounted', partitions: partitions as Prisma.InputJsonValue } });
  }

  /** The restore-service reused an existing mount: make sure its row says mounted, and that it was just used. */
  async recordReused(m: { id: string; backupId: string; nodeName: string; mountPath: string; partitions: unknown }): Promise<void> {
    await this.prisma.restoreMount.upsert({
      where: { id: m.id },
      create: { ...m, state: 'mounted', partitions: m.partitions as Prisma.InputJsonValue },
      update: { state: 'mounted', lastAccessAt: new Date() },
    });
  }

  listForNode(nodeName: string): Promise<RestoreMount[]> {
    return this.prisma.restoreMount.findMany({ where: { nodeName }, orderBy: { createdAt: 'asc' } });
  }

  async exists(id: string): Promise<boolean> {
    return (await this.prisma.restoreMount.count({ where: { id } })) > 0;
  }

  /** Mounts that hold the chain of this restore point (mounting, mounted or unmounting). */
  countHolding(backupId: string): Promise<number> {
    return this.prisma.restoreMount.count({ where: { backupId, state: { in: [...MOUNT_HOLDING_STATES] } } });
  }

  /** Restore points of one repository held by a mount (on any node). */
  async heldInRepository(repositoryId: string): Promise<string[]> {
    const rows = await this.prisma.restoreMount.findMany({
      where: { state: { in: [...MOUNT_HOLDING_STATES] }, backup: { repositoryId } },
      select: { backupId: true },
    });
    return [...new Set(rows.map((r) => r.backupId))];
  }

  /** Removing a row that is already gone is not an error. Returns how many went. */
  async remove(...ids: string[]): Promise<number> {
    if (!ids.length) return 0;
    return (await this.prisma.restoreMount.deleteMany({ where: { id: { in: ids } } })).count;
  }

  /** Best effort: an unknown id changes nothing. */
  async touch(id: string): Promise<void> {
    await this.prisma.restoreMount.updateMany({ where: { id }, data: { lastAccessAt: new Date() } });
  }
}
