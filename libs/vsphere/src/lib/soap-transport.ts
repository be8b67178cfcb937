import { fetch, type Agent } from 'undici';
import { faultError, TransportError, type FaultCtor, type SoapFaultError } from './errors';
import { arr, child, childText, parseXml, xsiType } from './xml';

/**
 * One SOAP endpoint: posts envelopes with `fetch`, carries the session
 * cookie, and turns SOAP faults into typed errors. Knows nothing of login.
 */
export interface SoapTransportOptions {
  url: string;
  dispatcher: Agent;
  /** vSphere API version sent in SOAPAction (vCenter picks the schema by it). */
  apiVersion: string;
  requestTimeoutMs: number;
}

export interface CallOptions {
  /** Remap fault types to specific errors for this call. */
  faults?: Record<string, FaultCtor>;
}

const SESSION_COOKIE = 'vmware_soap_session';

export class SoapTransport {
  private cookie: string | undefined;

  constructor(private readonly options: SoapTransportOptions) {}

  get sessionCookie(): string | undefined {
    return this.cookie;
  }

  clearSession(): void {
    this.cookie = undefined;
  }

  /** Call `method`; `body` is the XML of the parameters (including `_this`). */
  async call(method: string, body: string, callOptions: CallOptions = {}): Promise<unknown> {
    const envelope =
      '<?xml version="1.0" encoding="UTF-8"?>' +
      '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
      'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
      `<soapenv:Body><${method} xmlns="urn:vim25">${body}</${method}></soapenv:Body></soapenv:Envelope>`;
    const headers: Record<string, string> = {
      'content-type': 'text/xml; charset=utf-8',
      soapaction: `urn:vim25/${this.options.apiVersion}`,
    };
    if (this.cookie) headers['cookie'] = `${SESSION_COOKIE}=${this.cookie}`;
    let res;
    let text: string;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers,
        body: envelope,
        dispatcher: this.options.dispatcher,
        signal: AbortSignal.timeout(this.options.requestTimeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause ?? err;
      throw new TransportError(`${method}: ${this.options.url}: ${(cause as Error).message ?? String(cause)}`, undefined, { cause });
    }
    for (const c of res.headers.getSetCookie()) {
      // Sent back exactly as received (vCenter quotes the value).
      const m = new RegExp(`^${SESSION_COOKIE}=([^;]*)`).exec(c);
      if (m) this.cookie = m[1];
    }
    let doc: Record<string, unknown>;
    try {
      doc = parseXml(text);
    } catch (err) {
      throw new TransportError(`${method}: HTTP ${res.status}, response is not XML`, res.status, { cause: err });
    }
    const soapBody = child(child(doc, 'Envelope'), 'Body');
    if (soapBody === undefined) {
      throw new TransportError(`${method}: HTTP ${res.status}, no SOAP body: ${text.slice(0, 200)}`, res.status);
    }
    const fault = child(soapBody, 'Fault');
    if (fault !== undefined) throw parseFault(method, fault, callOptions.faults);
    if (!res.ok) throw new TransportError(`${method}: HTTP ${res.status}`, res.status);
    return child(child(soapBody, `${method}Response`), 'returnval');
  }
}

function parseFault(method: string, fault: unknown, overrides?: Record<string, FaultCtor>): SoapFaultError {
  const faultText = childText(fault, 'faultstring') ?? '';
  const detail = child(fault, 'detail');
  let faultType = 'SoapFault';
  let fields: Record<string, unknown> = {};
  if (detail && typeof detail === 'object') {
    const key = Object.keys(detail).find((k) => !k.startsWith('@_') && k !== '#text');
    if (key) {
      const node = arr((detail as Record<string, unknown>)[key])[0];
      faultType = xsiType(node) ?? key.replace(/^.*:/, '').replace(/Fault$/, '');
      if (node && typeof node === 'object') fields = node as Record<string, unknown>;
    }
  }
  return faultError(faultType, faultText, method, fields, overrides);
}
