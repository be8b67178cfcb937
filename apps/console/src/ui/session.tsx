import { createContext, useContext } from 'react';
import type { Role, WhoAmI } from '../api/types';

export interface Session {
  me: WhoAmI;
  logout: (why?: string) => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a logged-in page');
  return s;
}

/** What each role may do (the gateway enforces it; the console only hides what would be refused). */
const WRITE: Role[] = ['admin', 'operator'];
export const can = {
  backup: (r: Role) => WRITE.includes(r),
  verify: (r: Role) => WRITE.includes(r),
  consolidate: (r: Role) => WRITE.includes(r),
  cancel: (r: Role) => WRITE.includes(r),
  mount: (r: Role) => WRITE.includes(r),
  /** Instant-access exports and image downloads (RESTORE_ROLES). */
  exportDisk: (r: Role) => WRITE.includes(r),
  /** Writing a restore point back into a VM's disk (WRITE_ROLES). */
  writeBack: (r: Role) => WRITE.includes(r),
  delete: (r: Role) => r === 'admin',
  settings: (r: Role) => r === 'admin',
};

export function useCan(): Record<keyof typeof can, boolean> {
  const { me } = useSession();
  return Object.fromEntries(Object.entries(can).map(([k, f]) => [k, f(me.role)])) as Record<keyof typeof can, boolean>;
}
