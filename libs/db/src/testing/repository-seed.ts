import type { PrismaClient } from '../prisma-client';
import type { NewBackupJob } from '../repositories/backup-jobs.repository';

/** Rows the repository specs build on: one VM with one disk, one local repository. Test code only. */
export async function seedVmAndRepository(
  prisma: PrismaClient,
  vmContextId = 'ctx-1',
): Promise<{ vmContextId: string; repositoryId: string; vmDiskId: string }> {
  await prisma.vmContext.create({ data: { contextId: vmContextId, vmName: `vm-${vmContextId}`, vcenterHost: 'vc.example', vmMoref: `vm-${vmContextId}` } });
  const repositoryId = `repo-${vmContextId}`;
  await prisma.backupRepository.create({
    data: { id: repositoryId, name: repositoryId, repositoryType: 'local', config: { path: '/srv/x' }, storageNode: 'node-a' },
  });
  const disk = await prisma.vmDisk.create({ data: { id: `${vmContextId}-2000`, vmContextId, diskIndex: 0, deviceKey: 2000, capacityBytes: 1024n } });
  return { vmContextId, repositoryId, vmDiskId: disk.id };
}

export function newJob(over: Partial<NewBackupJob> & Pick<NewBackupJob, 'id' | 'vmContextId' | 'repositoryId'>): NewBackupJob {
  return {
    vmName: 'vm',
    runId: 'run-1',
    diskId: 0,
    backupType: 'full',
    requestedType: 'full',
    fallbackReason: null,
    repositoryType: 'local',
    repositoryPath: `${over.vmContextId}/disk-0/${over.id}.qcow2`,
    parentBackupId: null,
    previousChangeId: null,
    totalBytes: 100,
    virtualSizeBytes: 1024,
    storageNode: 'node-a',
    queueJobId: 'run-1',
    ...over,
  };
}
