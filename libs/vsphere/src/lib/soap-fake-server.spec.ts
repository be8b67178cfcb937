import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VSphereClient } from './client';
import { AmbiguousVmError, SoapFaultError, TaskTimeoutError, TransportError } from './errors';

// Behaviour the simulator cannot show (it never pages, its tasks finish at
// once): a scripted SOAP server answering like vCenter does.

const ENV = (body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ` +
  `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`;

const SERVICE_CONTENT = ENV(
  '<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval>' +
    '<rootFolder type="Folder">group-d1</rootFolder><propertyCollector type="PropertyCollector">propertyCollector</propertyCollector>' +
    '<viewManager type="ViewManager">ViewManager</viewManager><sessionManager type="SessionManager">SessionManager</sessionManager>' +
    '<about><fullName>Fake vCenter</fullName><apiVersion>8.0.2.0</apiVersion><apiType>VirtualCenter</apiType></about>' +
    '</returnval></RetrieveServiceContentResponse>',
);

function vmObject(i: number): string {
  return (
    `<objects><obj type="VirtualMachine">vm-${i}</obj>` +
    `<propSet><name>name</name><val xsi:type="xsd:string">vm${i}</val></propSet>` +
    `<propSet><name>config.hardware.device</name><val xsi:type="ArrayOfVirtualDevice">` +
    `<VirtualDevice xsi:type="VirtualDisk"><key>2000</key><capacityInKB>${i * 1024}</capacityInKB>` +
    `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds] vm${i}/vm${i}.vmdk</fileName><changeId>52 aa/${i}</changeId></backing>` +
    `</VirtualDevice><VirtualDevice xsi:type="VirtualE1000"><key>4000</key></VirtualDevice></val></propSet></objects>`
  );
}

describe('VSphereClient against a scripted SOAP server', () => {
  let server: Server;
  let url: string;
  const calls: string[] = [];
  let mode: 'ok' | 'html' = 'ok';

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const method = /<soapenv:Body><(\w+)/.exec(body)?.[1] ?? '';
        calls.push(method);
        const send = (status: number, xml: string, cookie?: string) => {
          res.writeHead(status, { 'content-type': 'text/xml', ...(cookie ? { 'set-cookie': cookie } : {}) });
          res.end(xml);
        };
        if (mode === 'html') return send(503, '<html>maintenance</html>');
        switch (method) {
          case 'RetrieveServiceContent':
            return send(200, SERVICE_CONTENT);
          case 'Login':
            return send(
              200,
              ENV('<LoginResponse xmlns="urn:vim25"><returnval><key>s1</key></returnval></LoginResponse>'),
              'vmware_soap_session="abc"; Path=/; HttpOnly',
            );
          case 'Logout':
            return send(200, ENV('<LogoutResponse xmlns="urn:vim25"></LogoutResponse>'));
          case 'CreateContainerView':
            return send(
              200,
              ENV('<CreateContainerViewResponse xmlns="urn:vim25"><returnval type="ContainerView">session[1]view</returnval></CreateContainerViewResponse>'),
            );
          case 'DestroyView':
            return send(200, ENV('<DestroyViewResponse xmlns="urn:vim25"></DestroyViewResponse>'));
          case 'RetrievePropertiesEx':
            if (body.includes('<type>Task</type>')) {
              return send(
                200,
                ENV(
                  '<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="Task">task-1</obj><propSet><name>info</name><val xsi:type="TaskInfo"><state>running</state></val></propSet></objects></returnval></RetrievePropertiesExResponse>',
                ),
              );
            }
            return send(
              200,
              ENV(
                `<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>t1</token>${vmObject(1)}${vmObject(2)}</returnval></RetrievePropertiesExResponse>`,
              ),
            );
          case 'ContinueRetrievePropertiesEx':
            if (body.includes('<token>t1</token>')) {
              return send(
                200,
                ENV(
                  `<ContinueRetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>t2</token>${vmObject(3)}</returnval></ContinueRetrievePropertiesExResponse>`,
                ),
              );
            }
            return send(
              200,
              ENV(
                `<ContinueRetrievePropertiesExResponse xmlns="urn:vim25"><returnval>${vmObject(4)}${vmObject(2).replace('vm-2<', 'vm-22<')}</returnval></ContinueRetrievePropertiesExResponse>`,
              ),
            );
          case 'QueryChangedDiskAreas':
            // A server that does not advance: the client must not loop forever.
            return send(
              200,
              ENV(
                '<QueryChangedDiskAreasResponse xmlns="urn:vim25"><returnval><startOffset>0</startOffset><length>0</length></returnval></QueryChangedDiskAreasResponse>',
              ),
            );
          default:
            return send(
              500,
              ENV(
                `<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>no ${method}</faultstring><detail><InvalidRequestFault xmlns="urn:vim25" xsi:type="InvalidRequest"></InvalidRequestFault></detail></soapenv:Fault>`,
              ),
            );
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/sdk`;
  });

  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('follows ContinueRetrievePropertiesEx tokens until the last page', async () => {
    const client = await VSphereClient.connect({ url, username: 'u', password: 'p' });
    const vms = await client.listVms();
    expect(vms.map((v) => `${v.ref.value}:${v.name}`)).toEqual(['vm-1:vm1', 'vm-2:vm2', 'vm-3:vm3', 'vm-4:vm4', 'vm-22:vm2']);
    expect(vms[2].disks).toEqual([
      {
        key: 2000,
        capacityBytes: 3 * 1024 * 1024,
        fileName: '[ds] vm3/vm3.vmdk',
        changeId: '52 aa/3',
        backingType: 'VirtualDiskFlatVer2BackingInfo',
        label: undefined,
        controllerKey: undefined,
        unitNumber: undefined,
      },
    ]);
    expect(calls.filter((c) => c === 'ContinueRetrievePropertiesEx')).toHaveLength(2);
    expect(calls).toContain('DestroyView');
    await client.logout();
  });

  it('refuses to pick one of several VMs with the same name', async () => {
    const client = await VSphereClient.connect({ url, username: 'u', password: 'p' });
    await expect(client.findVm({ name: 'vm2' })).rejects.toBeInstanceOf(AmbiguousVmError);
    await client.logout();
  });

  it('gives up on a task after its timeout', async () => {
    const client = await VSphereClient.connect({ url, username: 'u', password: 'p' });
    const err = await client.waitForTask({ type: 'Task', value: 'task-1' }, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskTimeoutError);
    expect((err as TaskTimeoutError).lastState).toBe('running');
    await client.logout();
  });

  it('stops paging when the server makes no progress', async () => {
    const client = await VSphereClient.connect({ url, username: 'u', password: 'p' });
    const vm = { type: 'VirtualMachine', value: 'vm-1' };
    const snap = { type: 'VirtualMachineSnapshot', value: 'snapshot-1' };
    await expect(client.queryChangedDiskAreas(vm, snap, 2000, '*', 1024 * 1024)).rejects.toThrow(/no progress/);
    await client.logout();
  });

  it('keeps unknown fault types as SoapFaultError with their text', async () => {
    const client = await VSphereClient.connect({ url, username: 'u', password: 'p' });
    const err = await client.currentTime().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SoapFaultError);
    expect(err).toMatchObject({ faultType: 'InvalidRequest', faultText: 'no CurrentTime', method: 'CurrentTime' });
    await client.logout();
  });

  it('reports an HTTP answer that is not SOAP as TransportError', async () => {
    mode = 'html';
    const err = await VSphereClient.connect({ url, username: 'u', password: 'p' }).catch((e: unknown) => e);
    mode = 'ok';
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).status).toBe(503);
  });

  it('reports an unreachable server as TransportError', async () => {
    await expect(VSphereClient.connect({ url: 'http://127.0.0.1:1/sdk', username: 'u', password: 'p' })).rejects.toBeInstanceOf(TransportError);
  });
});
