import { randomUUID } from 'node:crypto';
import type { CopyEvent, DiskReaderSpec, PreparedDisk, VCenterCredentials } from '@sendense/contracts';
import type { Extent } from '@sendense/nbd';
import type { MoRef, VSphereClient } from '@sendense/vsphere';
import { notFound } from './capture-error';
import type { DiskReader } from './disk-readers';

export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60 * 1000;

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

/** A snapshot held for one backup run, from prepare until release (or expiry). */
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
  idleTimeoutMs: number;
  /** Epoch ms when the session is released if nobody calls. */
  expiresAt: number;
  copy?: RunningCopy;
  releasing?: Promise<void>;
  timer?: NodeJS.Timeout;
}

export type NewSession = Omit<SnapshotSession, 'id' | 'expiresAt' | 'timer' | 'copy' | 'releasing'>;

/**
 * The agent's live snapshot sessions. Each has an idle timer: when no call
 * touches it for idleTimeoutMs (and no copy runs), onExpire is called, which
 * removes the snapshot, so a worker that died cannot leave one behind.
 */
export class SnapshotSessions {
  private readonly sessions = new Map<string, SnapshotSession>();

  constructor(private readonly onExpire: (session: SnapshotSession) => void) {}

  create(data: NewSession): SnapshotSession {
    const session: SnapshotSession = { ...data, id: randomUUID(), expiresAt: 0 };
    this.sessions.set(session.id, session);
    this.touch(session);
    return session;
  }

  /** The session, or undefined when unknown (never prepared, released or expired). */
  find(id: string): SnapshotSession | undefined {
    return typeof id === 'string' ? this.sessions.get(id) : undefined;
  }

  /** The session (touched), or NOT_FOUND. */
  get(id: string): SnapshotSession {
    const s = this.find(id);
    if (!s || s.releasing) throw notFound(`capture session ${id} not found (released or expired)`);
    this.touch(s);
    return s;
  }

  /** Restart the idle timer (not armed while a copy runs). */
  touch(session: SnapshotSession, afterMs = session.idleTimeoutMs): void {
    this.stopTimer(session);
    session.expiresAt = Date.now() + afterMs;
    if (session.copy) return;
    session.timer = setTimeout(() => {
      session.timer = undefined;
      if (this.sessions.get(session.id) === session && !session.copy) this.onExpire(session);
    }, afterMs);
    session.timer.unref();
  }

  stopTimer(session: SnapshotSession): void {
    if (session.timer) clearTimeout(session.timer);
    session.timer = undefined;
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
