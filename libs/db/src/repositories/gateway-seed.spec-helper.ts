import { randomUUID } from 'node:crypto';
import type { PrismaClient } from '../prisma-client';
import type { BackupStatus } from '../generated/client';

/** Minimal rows for the specs of the gateway's repositories. */
export async function seedVm(prisma: PrismaClient, name = 'vm1'): Promise<{ contextId: string; repositoryId: string }> {
  const contextId = `ctx-${name}-${randomUUID().slice(0, 8)}`;
  await prisma.vmContext.create({ data: { contextId, vmName: name, vcenterHost: 'vc', vmMoref: `vm-${randomUUID().slice(0, 8)}` } });
  const repositoryId = randomUUID();
  await prisma.backupRepository.create({
    data: { id: repositoryId, name: `repo-${repositoryId.slice(0, 8)}`, repositoryType: 'local', config: { path: '/srv' }, storageNode: 'n1' },
  });
  return { contextId, repositoryId };
}

export async function seedBackup(
  prisma: PrismaClient,
  vm: { contextId: string; repositoryId: string; vmName?: string },
  b: { runId: string; diskId?: number; status?: BackupStatus; createdAt?: Date; bytes?: number; error?: string },
): Promise<string> {
  const id = randomUUID();
  await prisma.backupJob.create({
    data: {
      id,
      vmContextId: vm.contextId,
      vmName: vm.vmName ?? 'vm1',
      runId: b.runId,
      diskId: b.diskId ?? 0,
      backupType: 'full',
      requestedType: 'incremental',
      status: b.status ?? 'completed',
      repositoryId: vm.repositoryId,
      repositoryType: 'local',
      repositoryPath: `${vm.contextId}/disk-${b.diskId ?? 0}/${id}.qcow2`,
      bytesTransferred: BigInt(b.bytes ?? 0),
      totalBytes: BigInt(b.bytes ?? 0),
      errorMessage: b.error ?? null,
      ...(b.createdAt ? { createdAt: b.createdAt } : {}),
      ...(b.status === 'completed' || b.status === undefined ? { completedAt: b.createdAt ?? new Date() } : {}),
    },
  });
  return id;
}
