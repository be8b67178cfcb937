import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CaptureError, toCaptureError } from './capture-error';
import {
  createDiskReader,
  nbdkitVddkArgs,
  openVddkWriter,
  StandInNbdReader,
  VddkReader,
  vddkThumbprint,
  type DaemonStarter,
  type SnapshotDiskRef,
} from './disk-readers';
import { NbdConnectionError, NbdCommandError } from '@sendense/nbd';
import { InvalidLoginError, TaskFailedError, TransportError } from '@sendense/vsphere';

const TP = 'aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd';

describe('nbdkit vddk command line', () => {
  it('builds one argv element per parameter, password by file, never on the command line', () => {
    const args = nbdkitVddkArgs({
      socket: '/run/sendense/vddk-1/nbd.sock',
      passwordFile: '/run/sendense/vddk-1/password',
      libdir: '/opt/vmware-vix-disklib-distrib',
      server: 'vcenter.example.com',
      user: 'backup@vsphere.local',
      thumbprint: TP,
      vmMoref: 'vm-123',
      snapshotMoref: 'snapshot-45',
      fileName: '[datastore 1] web01/web01_1.vmdk',
      transports: 'hotadd:nbdssl:nbd',
    });
    expect(args).toEqual([
      '-U',
      '/run/sendense/vddk-1/nbd.sock',
      '--exit-with-parent',
      '--foreground',
      '--readonly',
      'vddk',
      'libdir=/opt/vmware-vix-disklib-distrib',
      'server=vcenter.example.com',
      'user=backup@vsphere.local',
      'password=+/run/sendense/vddk-1/password',
      'thumbprint=AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD',
      'vm=moref=vm-123',
      'snapshot=snapshot-45',
      // spaces and brackets stay inside one argument: no shell is involved
      'file=[datastore 1] web01/web01_1.vmdk',
      'transports=hotadd:nbdssl:nbd',
    ]);
  });

  it('adds port only when it is not 443 and leaves out optional parameters', () => {
    const base = {
      socket: '/s',
      passwordFile: '/p',
      server: 'esx1',
      user: 'root',
      thumbprint: TP.replace(/:/g, ''),
      vmMoref: '42',
      snapshotMoref: '42-snapshot-3',
      fileName: '[ds] a/a.vmdk',
    };
    expect(nbdkitVddkArgs({ ...base, port: 443 })).not.toContain('port=443');
    const args = nbdkitVddkArgs({ ...base, port: 8443 });
    expect(args).toContain('port=8443');
    expect(args.some((a) => a.startsWith('libdir=') || a.startsWith('transports='))).toBe(false);
  });

  it('wants a SHA-1 thumbprint', () => {
    expect(vddkThumbprint('aabbccddeeff00112233445566778899aabbccdd')).toBe(TP.toUpperCase());
    expect(() => vddkThumbprint('abcd')).toThrow(CaptureError);
  });
});

describe('VddkReader', () => {
  const disk: SnapshotDiskRef = {
    vcenter: { url: 'https://vcenter.example.com:8443/sdk', username: 'backup', password: 's3cret pass', thumbprint: TP },
    vmMoref: 'vm-7',
    vmName: 'web01',
    snapshotMoref: 'snapshot-9',
    deviceKey: 2000,
    fileName: '[ds1] web01/web01.vmdk',
  };

  it('starts nbdkit with a 0600 password file in a private directory, serves the socket, cleans up on close', async () => {
    let seen: { command: string; args: readonly string[]; passwordMode: number; password: string; dirMode: number } | undefined;
    let stopped = false;
    const start: DaemonStarter = async (command, args) => {
      const pw = (args.find((a) => a.startsWith('password=+')) as string).slice('password=+'.length);
      seen = { command, args, passwordMode: statSync(pw).mode & 0o777, password: readFileSync(pw, 'utf8'), dirMode: statSync(dirname(pw)).mode & 0o777 };
      writeFileSync(args[1], ''); // nbdkit creates the socket when it is ready
      return { running: true, stop: async () => void (stopped = true), exitError: () => new Error('unused') as never };
    };
    const opened = await new VddkReader({ libdir: '/opt/vddk', transports: 'nbdssl', start }).open(disk);
    expect(seen?.command).toBe('nbdkit');
    expect(seen?.passwordMode).toBe(0o600);
    expect(seen?.dirMode).toBe(0o700);
    expect(seen?.password).toBe('s3cret pass');
    expect(seen?.args.join(' ')).not.toContain('s3cret');
    expect(seen?.args).toEqual(
      expect.arrayContaining([
        'server=vcenter.example.com',
        'port=8443',
        'vm=moref=vm-7',
        'snapshot=snapshot-9',
        'file=[ds1] web01/web01.vmdk',
        'transports=nbdssl',
      ]),
    );
    const socket = seen?.args[1] as string;
    expect(opened.uri).toBe(`nbd+unix:///?socket=${socket}`);
    // The password file is gone once nbdkit runs (it read it at start).
    const pw = (seen?.args.find((a) => a.startsWith('password=+')) as string).slice(10);
    expect(existsSync(pw)).toBe(false);
    await opened.close();
    expect(stopped).toBe(true);
    expect(existsSync(dirname(socket))).toBe(false);
  });

  it('reports nbdkit exiting during start with its stderr, and removes the directory', async () => {
    let dir = '';
    const start: DaemonStarter = async (_c, args) => {
      dir = dirname(args[1]);
      return { running: false, stop: async () => undefined, exitError: (ctx: string) => new Error(`${ctx}: nbdkit: error: cannot open VDDK library`) as never };
    };
    await expect(new VddkReader({ start }).open(disk)).rejects.toThrow('cannot open VDDK library');
    expect(existsSync(dir)).toBe(false);
  });

  it('the snapshot reader is read-only; the restore writer opens the disk itself writable (no snapshot)', async () => {
    const seen: (readonly string[])[] = [];
    const start: DaemonStarter = async (_command, args) => {
      seen.push(args);
      writeFileSync(args[1], '');
      return { running: true, stop: async () => undefined, exitError: () => new Error('unused') as never };
    };
    await (await new VddkReader({ start }).open(disk)).close();
    const writer = await openVddkWriter(
      { libdir: '/opt/vddk', start },
      { vcenter: disk.vcenter, vmMoref: 'vm-7', vmName: 'web01', deviceKey: 2000, fileName: disk.fileName },
    );
    await writer.close();
    const [reader, written] = seen;
    expect(reader).toContain('--readonly');
    expect(reader).toContain('snapshot=snapshot-9');
    expect(written).not.toContain('--readonly');
    expect(written?.some((a) => a.startsWith('snapshot='))).toBe(false);
    expect(written).toEqual(expect.arrayContaining(['vddk', 'libdir=/opt/vddk', 'vm=moref=vm-7', 'file=[ds1] web01/web01.vmdk']));
    expect(writer.uri).toMatch(/^nbd\+unix:\/\/\/\?socket=/);
  });

  it('refuses a vCenter without thumbprint', async () => {
    await expect(new VddkReader().open({ ...disk, vcenter: { ...disk.vcenter, thumbprint: undefined } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('createDiskReader picks the reader from the spec', () => {
    expect(createDiskReader({ kind: 'standin-nbd', harnessUrl: 'https://127.0.0.1:1/harness' })).toBeInstanceOf(StandInNbdReader);
    expect(createDiskReader({ kind: 'vddk', libdir: '/opt/vddk' })).toBeInstanceOf(VddkReader);
    expect(() => createDiskReader({ kind: 'nope' } as never)).toThrow('unknown disk reader');
  });
});

describe('error classification', () => {
  it('maps NBD, vSphere and abort errors to codes and retry flags', () => {
    const ctx = { server: 'unix:/x.sock', exportName: 'disk', offset: 65536 };
    const dropped = toCaptureError(new NbdConnectionError('connection closed', ctx), 'VM a disk 2000');
    expect(dropped).toMatchObject({ code: 'COPY_FAILED', retryable: true });
    expect(dropped.message).toMatch(/^VM a disk 2000: connection closed \(server unix:\/x.sock, export "disk", offset 65536\)/);
    expect(toCaptureError(new NbdCommandError(28, { ...ctx, command: 'WRITE' }))).toMatchObject({ code: 'COPY_FAILED', retryable: false });
    expect(toCaptureError(new TransportError('ECONNRESET'))).toMatchObject({ code: 'VCENTER', retryable: true });
    expect(toCaptureError(new InvalidLoginError('InvalidLogin', 'bad', 'Login'))).toMatchObject({ code: 'VCENTER', retryable: false });
    expect(toCaptureError(new TaskFailedError('task-1', 'FileLocked', 'locked'))).toMatchObject({ code: 'VCENTER', retryable: false });
    const abort = new Error('copy aborted');
    abort.name = 'AbortError';
    expect(toCaptureError(abort)).toMatchObject({ code: 'CANCELLED' });
    expect(toCaptureError(new Error('boom'))).toMatchObject({ code: 'INTERNAL', retryable: false });
    expect(new CaptureError('NOT_FOUND', 'x').toPayload()).toEqual({ code: 'NOT_FOUND', message: 'x', retryable: false });
  });
});
