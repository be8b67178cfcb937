import { createHash, timingSafeEqual } from 'node:crypto';
import { Controller } from '@nestjs/common';
import { MessagePattern, RpcException } from '@nestjs/microservices';
import type { ConsumerDeserializer, IncomingEvent, IncomingRequest, OutgoingEvent, OutgoingRequest, ProducerSerializer } from '@nestjs/microservices';

/**
 * Internal calls carry the per-install secret SENDENSE_INTERNAL_TOKEN (made
 * by scripts/setup.sh into .sendense/env, never logged). Why a shared secret
 * and not Unix sockets: the Capture Agent may run on another host (next to
 * vCenter) and the services are reached over TCP; a token in every message
 * works for all three transports alike and is checked in constant time.
 * - HTTP (restore-service): header `X-Sendense-Internal-Token`.
 * - Nest TCP (nbd-exporter, Capture Agent): field `auth` of every packet,
 *   added by the clients' serializer and checked by the servers' deserializer.
 */
export const INTERNAL_TOKEN_HEADER = 'x-sendense-internal-token';
/** Pattern an unauthenticated request is rerouted to (its handler refuses it). */
export const UNAUTHENTICATED_PATTERN = 'sendense.internal.unauthenticated';
export const UNAUTHENTICATED_MESSAGE =
  "internal call refused: the caller did not present this install's SENDENSE_INTERNAL_TOKEN (set the same value in every service's environment)";

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time comparison of a presented token with the expected one; an empty expected token matches nothing. */
export function internalTokenMatches(given: unknown, expected: string): boolean {
  if (!expected || typeof given !== 'string' || given === '') return false;
  return timingSafeEqual(digest(given), digest(expected));
}

/** Client side of Nest TCP: every outgoing packet carries the token. */
export class InternalAuthSerializer implements ProducerSerializer {
  constructor(private readonly token: string) {}
  serialize(packet: OutgoingEvent | OutgoingRequest): (OutgoingEvent | OutgoingRequest) & { auth: string } {
    return { ...packet, auth: this.token };
  }
}

/**
 * Server side of Nest TCP: a packet without the right token is rerouted to
 * UNAUTHENTICATED_PATTERN with its data dropped, so no handler of the service
 * ever sees it (events without the token are dropped: no handler listens).
 */
export class InternalAuthDeserializer implements ConsumerDeserializer {
  constructor(private readonly token: string) {}
  deserialize(value: unknown): IncomingRequest | IncomingEvent {
    const v = (value ?? {}) as { pattern?: unknown; data?: unknown; id?: string; auth?: unknown };
    if (!internalTokenMatches(v.auth, this.token)) {
      return v.id === undefined ? { pattern: UNAUTHENTICATED_PATTERN, data: null } : { pattern: UNAUTHENTICATED_PATTERN, data: null, id: v.id };
    }
    return v.id === undefined ? { pattern: v.pattern as string, data: v.data } : { pattern: v.pattern as string, data: v.data, id: v.id };
  }
}

/** Answers every unauthenticated request with an error that says what to fix. Add it to each TCP service's controllers. */
export class InternalAuthRefusal {
  refuse(): never {
    throw new RpcException({ code: 'INTERNAL', message: UNAUTHENTICATED_MESSAGE });
  }
}
// Decorators applied by hand: this lib is also loaded from source by tsx, which
// compiles files outside an app's tsconfig with standard (not legacy) decorators.
Controller()(InternalAuthRefusal);
{
  const descriptor = Object.getOwnPropertyDescriptor(InternalAuthRefusal.prototype, 'refuse');
  if (descriptor) MessagePattern(UNAUTHENTICATED_PATTERN)(InternalAuthRefusal.prototype, 'refuse', descriptor);
}

/** Options to spread into a Nest TCP server's `options`. */
export const internalAuthServerOptions = (token: string) => ({ deserializer: new InternalAuthDeserializer(token) });
/** Options to spread into a Nest TCP client's `options`. */
export const internalAuthClientOptions = (token: string | undefined) => (token ? { serializer: new InternalAuthSerializer(token) } : {});

/** HTTP middleware (Express/Nest `app.use`): 401 for a request without the token; `open` paths (health) pass. */
export function internalAuthHttp(token: string, open: readonly string[] = []) {
  return (
    req: { headers: Record<string, string | string[] | undefined>; url?: string },
    res: { statusCode: number; setHeader(name: string, value: string): void; end(body: string): void },
    next: () => void,
  ): void => {
    const path = (req.url ?? '').split('?', 1)[0] ?? '';
    if (open.includes(path) || internalTokenMatches(req.headers[INTERNAL_TOKEN_HEADER], token)) return next();
    res.statusCode = 401;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ statusCode: 401, message: UNAUTHENTICATED_MESSAGE, error: 'Unauthorized' }));
  };
}
