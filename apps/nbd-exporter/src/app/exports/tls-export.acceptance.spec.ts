import { mkdir, copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@sendense/process';
import { makeTestEnv, nbdSize, qcow2, type TestEnv } from '../../testing/test-env';
import { MemoryExportRecordStore } from '../store/memory-export-record-store';
import { NbdExportManager } from './export-manager';

/** Exports reached from another host: qemu-nbd with x509 credentials (mutual TLS). */
jest.setTimeout(60_000);

let env: TestEnv;
let cliDir: string;

async function makeCerts(dir: string): Promise<{ srv: string; cli: string }> {
  const srv = join(dir, 'srv');
  const cli = join(dir, 'cli');
  await mkdir(srv);
  await mkdir(cli);
  const ssl = (...args: string[]) => run('openssl', args);
  const ca = join(dir, 'ca-cert.pem');
  const caKey = join(dir, 'ca-key.pem');
  await ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=sendense-test-ca');
  const issue = async (key: string, cert: string, cn: string, ext: string) => {
    const csr = `${cert}.csr`;
    const extFile = `${cert}.ext`;
    await writeFile(extFile, ext);
    await ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`);
    await ssl('x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', extFile);
  };
  await issue(join(srv, 'server-key.pem'), join(srv, 'server-cert.pem'), '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await issue(join(cli, 'client-key.pem'), join(cli, 'client-cert.pem'), 'backup-worker', 'extendedKeyUsage=clientAuth\n');
  await copyFile(ca, join(srv, 'ca-cert.pem'));
  await copyFile(ca, join(cli, 'ca-cert.pem'));
  return { srv, cli };
}

beforeAll(async () => {
  env = await makeTestEnv(10);
  const certs = await makeCerts(env.dir);
  cliDir = certs.cli;
  env.config.tlsCredsDir = certs.srv;
});
afterAll(() => env.cleanup());

it('serves a QCOW2 export over TLS only, to clients with a certificate of the CA', async () => {
  const manager = new NbdExportManager(env.config, new MemoryExportRecordStore());
  await manager.start();
  try {
    const image = await qcow2(join(env.root, 'tls.qcow2'), '4M');
    const exp = await manager.create({ vmContextId: 'ctx-tls', diskId: 0, type: 'full', kind: 'qcow2', filePath: image, writable: true });
    expect(exp.tls).toBe(true);
    expect(exp.uri).toMatch(/^nbds:\/\//);
    expect(await nbdSize(`${exp.uri}?tls-certificates=${cliDir}`)).toBe(4 * 1024 * 1024);
    // Plain NBD is refused, and so is TLS without a client certificate.
    expect(await nbdSize(exp.uri.replace(/^nbds:/, 'nbd:'))).toBeNull();
    expect(await nbdSize(exp.uri)).toBeNull();
  } finally {
    await manager.shutdown();
  }
});

it('serves a Unix-socket export without TLS even with x509 credentials (the socket is for this host only)', async () => {
  const manager = new NbdExportManager(env.config, new MemoryExportRecordStore());
  await manager.start();
  try {
    const image = await qcow2(join(env.root, 'tls-unix.qcow2'), '4M');
    const exp = await manager.create({
      vmContextId: 'ctx-tls-unix',
      diskId: 0,
      type: 'full',
      kind: 'qcow2',
      filePath: image,
      writable: true,
      transport: 'unix',
    });
    expect([exp.tls, exp.tlsMode]).toEqual([false, null]);
    expect(await nbdSize(exp.uri)).toBe(4 * 1024 * 1024);
  } finally {
    await manager.shutdown();
  }
});
