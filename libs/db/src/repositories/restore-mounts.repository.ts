import type { PrismaClient } from '../prisma-client';
import type { MountState, Prisma, RestoreMount } from '../generated/client';

/** How long the mount-cap transaction may wait for a connection (and, twice that, run): the pool's acquire timeout and then some. */
const TX_WAIT_MS = 10_000;

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

  /**
   * Recorded before mounting, for an API key holding at most `cap` mounts
   * (0: no cap). One transaction that locks the key's api_keys row, so
   * parallel requests of one key (on any gateway) are counted one after the
   * other. A request for a restore point already mounted (or being mounted)
   * on this node is let through: the restore-service reuses that mount, so
   * it makes nothing new. Returns the mounts the key held when refused.
   *
   * Prisma's interactive-transaction defaults (2 s to get a connection and
   * BEGIN, 5 s for the whole) are shorter than the pool's own acquire timeout
   * and than a lock wait behind nine parallel requests on a loaded host, so
   * they are set here from TX_WAIT_MS; a failure says which mount and key.
   */
  async createPendingWithinCap(m: {
    id: string;
    backupId: string;
    nodeName: string;
    apiKeyId: string;
    cap: number;
  }): Promise<{ created: true } | { created: false; held: number }> {
    try {
      return await this.prisma.$transaction(
        async (tx) => {
          await tx.$queryRaw`SELECT id FROM api_keys WHERE id = ${m.apiKeyId} FOR UPDATE`;
          if (m.cap > 0) {
            const reused = await tx.restoreMount.count({ where: { backupId: m.backupId, nodeName: m.nodeName, state: { in: ['mounting', 'mounted'] } } });
            if (reused === 0) {
              const held = await tx.restoreMount.count({ where: { apiKeyId: m.apiKeyId, state: { in: [...MOUNT_HOLDING_STATES] } } });
              if (held >= m.cap) return { created: false as const, held };
            }
          }
          await tx.restoreMount.create({
            data: { id: m.id, backupId: m.backupId, nodeName: m.nodeName, apiKeyId: m.apiKeyId, mountPath: '', state: 'mounting' },
          });
          return { created: true as const };
        },
        { maxWait: TX_WAIT_MS, timeout: TX_WAIT_MS * 2 },
      );
    } catch (err) {
      throw new Error(
        `recording the mount of backup ${m.backupId} on node ${m.nodeName} for API key ${m.apiKeyId} (mount cap ${m.cap}) failed: ${(err as Error).message}; nothing was mounted, try again (the database may be overloaded or unreachable: GET /api/v1/health)`,
        { cause: err },
      );
    }
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
