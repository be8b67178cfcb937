import { VSphereClient } from './client';
import { FolderNotFoundError, InvalidFolderPathError, MAX_FOLDER_PATH, parseFolderPath } from './folders';
import { startStandIn, type StandIn } from '../testing/stand-in';
import type { HarnessClient } from '../testing/harness-client';
import { scratchDir } from '../testing/test-env';

// Folder selection against the stand-in: the govmomi simulator's own
// folders (CreateFolder, MoveIntoFolder_Task), walked by name.

describe('VMs by inventory folder (stand-in)', () => {
  const scratch = scratchDir('vsphere-folders');
  let standIn: StandIn;
  let client: VSphereClient;

  beforeAll(async () => {
    const disks = [{ sizeMiB: 8 }];
    standIn = await startStandIn({
      stateDir: scratch.dir,
      vms: [
        { name: 'web-1', folder: 'prod/web', disks },
        { name: 'web-deep', folder: 'prod/web/blue', disks },
        { name: 'db-1', folder: 'prod/db', disks },
        { name: 'loose', disks },
      ],
    });
    client = await VSphereClient.connect({ url: standIn.url, username: standIn.username, password: standIn.password, tls: { thumbprint: standIn.thumbprint } });
  }, 240000);

  afterAll(async () => {
    await client?.logout();
    await standIn?.stop();
    scratch.cleanup();
  });

  const names = async (path: string) => (await client.listVmsInFolder(path)).map((v) => v.name).sort();

  it('lists the VMs of a folder and its sub-folders, with disks, and nothing outside', async () => {
    expect(await names('prod/web')).toEqual(['web-1', 'web-deep']);
    expect(await names('/prod/web/')).toEqual(['web-1', 'web-deep']);
    expect(await names('prod/web/blue')).toEqual(['web-deep']);
    expect(await names('prod')).toEqual(['db-1', 'web-1', 'web-deep']);
    const [vm] = await client.listVmsInFolder('prod/db');
    expect(vm.disks.map((d) => d.capacityBytes)).toEqual([8 * 1024 * 1024]);
  });

  it('matches names exactly: case and partial names do not match, and the error says what exists there', async () => {
    await expect(client.listVmsInFolder('Prod/web')).rejects.toThrow(FolderNotFoundError);
    const err = (await client.listVmsInFolder('prod/we').catch((e: unknown) => e)) as FolderNotFoundError;
    expect(err).toBeInstanceOf(FolderNotFoundError);
    expect(err.found).toEqual(['prod']);
    expect(err.existing).toEqual(['db', 'web']);
    expect(err.message).toBe('folder path prod/we: no folder we in prod; there are: db, web');
  });

  it('sees a VM moved into the folder at the next call', async () => {
    await (standIn.harness as HarnessClient).moveToFolder('loose', 'prod/web/green');
    expect(await names('prod/web')).toEqual(['loose', 'web-1', 'web-deep']);
    expect(await names('prod/web/green')).toEqual(['loose']);
  });

  it('refuses paths that are not folder paths before asking vCenter', () => {
    expect(parseFolderPath('prod/web')).toEqual(['prod', 'web']);
    for (const bad of ['', '/', 'prod//web', 'prod/../x', 'prod/./web', 'prod/\nweb', 'a\u0000b', 'x'.repeat(MAX_FOLDER_PATH + 1)]) {
      expect(() => parseFolderPath(bad)).toThrow(InvalidFolderPathError);
    }
  });
});
