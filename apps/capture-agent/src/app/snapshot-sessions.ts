import { randomUUID } from 'node:crypto';
import type { CopyEvent, DiskReaderSpec, PreparedDisk, VCenterCredentials } from '@sendense/contracts';
import type { Extent } from '@sendense/nbd';
import type { MoRef, VSphereClient } from '@sendense/vsphere';
import { CaptureError, notFound } from './capture-error';
import type { DiskReader } from './disk-readers';

/** CAPTURE_SESSION_LEASE's default, for callers without settings (tests). */
export const DEFAULT_LEASE_MS = 20_000;
/** Bounds of a lease a prepare request may ask for. */
export const MIN_LEASE_MS = 500;
export const MAX_LEASE_MS = 60 * 60 * 1000;
/** How long (and how many) expired sessions are remembered, so a late call hears LEASE_EXPIRED and not "not found". */
const EXPIRED_KEEP_MS = 6 * 60 * 60 * 1000;
const EXPIRED_KEEP_MAX = 1000;

/** One disk of a prepared snapshot and the extents a copy transfers. */
export interface DiskPlan extends PreparedDisk {
  extents: Extent[];
}

export interface RunningCopy {
  abort: AbortController;
  /** Settles when the copy has stopped (success or failure). */
  done: Promise<unknown>;
  /** Latest progress, for logs. */
  last?: CopyEvent;
}

/** A snapshot held for one backup run, from prepare until release (or until its lease runs out). */
export interface SnapshotSession {
  id: string;
  runId: string;
  vcenter: VCenterCredentials;
  client: VSphereClient;
  vm: { ref: MoRef; name: string; instanceUuid: string | null };
  snapshot: MoRef;
  readerSpec: DiskReaderSpec;
  reader: DiskReader;
  disks: Map<number, DiskPlan>;
  leaseMs: number;
  /** Epoch ms when the lease runs out unless a call renews it. */
  expiresAt: number;
  copy?: RunningCopy;
  releasing?: Promise<void>;
  timer?: NodeJS.Timeout;
}

export type NewSession = Omit<SnapshotSession, 'id' | 'expiresAt' | 'timer' | 'copy' | 'releasing'>;

interface ExpiredSession {
  runId: string;
  vm: string;
  snapshot: string;
  leaseMs: number;
  at: number;
}

/** "VM <name> (<moref>)", as messages name a session's VM. */
export function describeVm(s: { vm: { name: string; ref: MoRef } }): string {
  return `VM ${s.vm.name} (${s.vm.ref.value})`;
}

/**
 * The agent's live snapshot sessions, each on a lease: every call on the
 * session renews it (the worker renews it every quarter lease, also while a
 * copy runs). When the lease runs out the caller is gone (its worker was
 * killed), and onExpire stops the copy and removes the snapshot. Expired
 * sessions are remembered for a while so that a late call gets LEASE_EXPIRED.
 */
export class SnapshotSessions {
  private readonly sessions = new Map<string, SnapshotSession>();
  private readonly expired = new Map<string, ExpiredSession>();

  constructor(private readonly onExpire: (session: SnapshotSession) => void) {}

  create(data: NewSession): SnapshotSession {
    const session: SnapshotSession = { ...data, id: randomUUID(), expiresAt: 0 };
    this.sessions.set(session.id, session);
    this.renew(session);
    return session;
  }

  /** The session, or undefined when unknown (never prepared, released or expired). */
  find(id: string): SnapshotSession | undefined {
    return typeof id === 'string' ? this.sessions.get(id) : undefined;
  }

  /** The session (its lease renewed), or LEASE_EXPIRED / NOT_FOUND. */
  get(id: string): SnapshotSession {
    const s = this.find(id);
    const gone = this.expiredError(id);
    if (gone) throw gone;
    if (!s || s.releasing) {
      throw notFound(`capture session ${id} not found (released, or prepared on an agent that has restarted since)`);
    }
    this.renew(s);
    return s;
  }

  /** LEASE_EXPIRED naming the session's run, VM and snapshot when its lease ran out; else undefined. */
  expiredError(id: string): CaptureError | undefined {
    const e = typeof id === 'string' ? this.expired.get(id) : undefined;
    if (!e) return undefined;
    return new CaptureError(
      'LEASE_EXPIRED',
      `capture session ${id} (run ${e.runId}, ${e.vm}) expired at ${new Date(e.at).toISOString()}: nobody renewed its ${e.leaseMs / 1000} s lease ` +
        `(CAPTURE_SESSION_LEASE), so its copy was stopped and snapshot ${e.snapshot} removed; prepare a new session`,
      true,
    );
  }

  /** Start the lease again from now (afterMs: a shorter retry after a failed release). */
  renew(session: SnapshotSession, afterMs = session.leaseMs): void {
    this.stopTimer(session);
    session.expiresAt = Date.now() + afterMs;
    session.timer = setTimeout(() => {
      session.timer = undefined;
      // A release under way owns the session (it retries through renew if it fails).
      if (this.sessions.get(session.id) === session && !session.releasing) this.onExpire(session);
    }, afterMs);
    session.timer.unref();
  }

  stopTimer(session: SnapshotSession): void {
    if (session.timer) clearTimeout(session.timer);
    session.timer = undefined;
  }

  /** Remember that the session's lease ran out: from now on every call on it gets LEASE_EXPIRED. */
  markExpired(session: SnapshotSession, at = Date.now()): void {
    this.expired.set(session.id, {
      runId: session.runId,
      vm: `VM ${session.vm.name} (${session.vm.ref.value})`,
      snapshot: session.snapshot.value,
      leaseMs: session.leaseMs,
      at,
    });
    const cutoff = Date.now() - EXPIRED_KEEP_MS;
    for (const [id, e] of this.expired) {
      if (this.expired.size <= EXPIRED_KEEP_MAX && e.at >= cutoff) break;
      this.expired.delete(id); // oldest first (insertion order)
    }
  }

  isExpired(session: SnapshotSession): boolean {
    return this.expired.has(session.id);
  }

  delete(session: SnapshotSession): void {
    this.stopTimer(session);
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
  }

  all(): SnapshotSession[] {
    return [...this.sessions.values()];
  }

  get size(): number {
    return this.sessions.size;
  }
}
