import type { BackupRunResult, DiskOutcome } from '../backup/backup.service';
import { suspectEvents } from './chain-events';

const disk = (diskId: number, suspectReason: string | null): DiskOutcome => ({
  diskId,
  deviceKey: 2000 + diskId,
  backupId: `bk-${diskId}`,
  type: 'incremental',
  fallbackReason: null,
  bytesTransferred: 65536,
  bytesZeroed: 0,
  allocatedBytes: 65536,
  changeId: `cid/${diskId}`,
  suspectReason,
});

describe('suspectEvents', () => {
  it('gives one chain.suspect event per disk the CBT audit marked, with VM, disk, backup id and reason', () => {
    const result: BackupRunResult = {
      runId: 'run-1',
      vmContextId: 'ctx-web',
      vmName: 'web01',
      disks: [disk(0, null), disk(1, 'CBT audit: 3 of 16 blocks ... differ')],
    };
    expect(suspectEvents({ repositoryId: 'repo-1' }, result)).toEqual([
      {
        vm: { contextId: 'ctx-web', name: 'web01' },
        disk: { diskId: 1, deviceKey: 2001 },
        backupId: 'bk-1',
        runId: 'run-1',
        repositoryId: 'repo-1',
        reason: 'CBT audit: 3 of 16 blocks ... differ',
        next: expect.stringMatching(/next backup of disk 1 of web01 will be a full/),
      },
    ]);
  });

  it('gives none for a clean run or a run without result', () => {
    expect(suspectEvents({ repositoryId: 'r' }, { runId: 'r', vmContextId: 'c', vmName: 'v', disks: [disk(0, null)] })).toEqual([]);
    expect(suspectEvents({ repositoryId: 'r' }, undefined)).toEqual([]);
  });
});
