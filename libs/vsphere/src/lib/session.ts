import type { Agent } from 'undici';
import { createDispatcher, type TlsOptions } from './tls';
import { NotAuthenticatedError, VSphereError } from './errors';
import { SoapTransport, type CallOptions } from './soap-transport';
import type { ServiceContent } from './types';
import { child, childText, el, moRefEl, toMoRef, type MoRef } from './xml';

export interface SessionOptions {
  /** SDK URL, e.g. `https://vcenter.example/sdk`. */
  url: string;
  username: string;
  password: string;
  tls?: TlsOptions;
  /** API version for SOAPAction (default 7.0.3.0). */
  apiVersion?: string;
  requestTimeoutMs?: number;
  /**
   * Send a cheap call this often to keep the session alive (vCenter drops
   * idle sessions after 30 min by default). 0 disables; an expired session
   * is still renewed by logging in again on NotAuthenticated.
   */
  keepAliveMs?: number;
}

const SERVICE_INSTANCE: MoRef = { type: 'ServiceInstance', value: 'ServiceInstance' };

/**
 * A logged-in vSphere session: SOAP calls with transparent re-login when
 * the server answers NotAuthenticated (expired or terminated session).
 */
export class VSphereSession {
  readonly transport: SoapTransport;
  private content: ServiceContent | undefined;
  private relogin: Promise<void> | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  /** How many times the session was re-established after NotAuthenticated. */
  reloginCount = 0;

  private readonly dispatcher: Agent;

  constructor(private readonly options: SessionOptions) {
    this.dispatcher = createDispatcher(options.tls ?? {});
    this.transport = new SoapTransport({
      url: options.url,
      dispatcher: this.dispatcher,
      apiVersion: options.apiVersion ?? '7.0.3.0',
      requestTimeoutMs: options.requestTimeoutMs ?? 60000,
    });
  }

  get serviceContent(): ServiceContent {
    if (!this.content) throw new VSphereError('not connected: call connect() first');
    return this.content;
  }

  async connect(): Promise<void> {
    this.content = await this.retrieveServiceContent();
    await this.login();
    if (this.options.keepAliveMs) {
      this.keepAlive = setInterval(() => {
        this.call('CurrentTime', moRefEl('_this', SERVICE_INSTANCE)).catch(() => undefined);
      }, this.options.keepAliveMs);
      this.keepAlive.unref();
    }
  }

  async retrieveServiceContent(): Promise<ServiceContent> {
    const rv = await this.transport.call('RetrieveServiceContent', moRefEl('_this', SERVICE_INSTANCE));
    const ref = (name: string): MoRef => {
      const r = toMoRef(child(rv, name));
      if (!r) throw new VSphereError(`RetrieveServiceContent: no ${name} in the answer`);
      return r;
    };
    const about = child(rv, 'about');
    return {
      rootFolder: ref('rootFolder'),
      propertyCollector: ref('propertyCollector'),
      viewManager: ref('viewManager'),
      sessionManager: ref('sessionManager'),
      searchIndex: toMoRef(child(rv, 'searchIndex')),
      about: {
        fullName: childText(about, 'fullName') ?? '',
        apiVersion: childText(about, 'apiVersion') ?? '',
        apiType: childText(about, 'apiType') ?? '',
        instanceUuid: childText(about, 'instanceUuid'),
      },
    };
  }

  /** Log in; an existing session cookie is dropped first (Login on a live session fails). */
  async login(): Promise<void> {
    this.transport.clearSession();
    await this.transport.call(
      'Login',
      moRefEl('_this', this.serviceContent.sessionManager) + el('userName', this.options.username) + el('password', this.options.password),
    );
  }

  /** Close the connections without logging out (e.g. after a failed connect). */
  async close(): Promise<void> {
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    await this.dispatcher.close();
  }

  /** End the session (an already expired one is fine) and close the connections. */
  async logout(): Promise<void> {
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    try {
      if (this.transport.sessionCookie && this.content) {
        await this.transport.call('Logout', moRefEl('_this', this.content.sessionManager));
      }
    } catch (err) {
      if (!(err instanceof NotAuthenticatedError)) throw err;
    } finally {
      this.transport.clearSession();
      await this.dispatcher.close();
    }
  }

  /** A SOAP call that survives one session expiry by logging in again. */
  async call(method: string, body: string, options?: CallOptions): Promise<unknown> {
    try {
      return await this.transport.call(method, body, options);
    } catch (err) {
      if (!(err instanceof NotAuthenticatedError) || !this.content) throw err;
      // Concurrent callers share one re-login.
      this.relogin ??= this.login().finally(() => (this.relogin = undefined));
      await this.relogin;
      this.reloginCount++;
      return this.transport.call(method, body, options);
    }
  }
}
