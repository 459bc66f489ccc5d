/** The signed-in operator, as `GET /v1/console/session` describes it. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export interface Operator {
  id: string;
  name: string;
  role: 'admin' | 'auditor';
}

export interface SessionInfo {
  operator: Operator;
  csrf_token: string;
  expires_at: string;
  idle_timeout_s: number;
}

export const SessionContext = createContext<SessionInfo | undefined>(undefined);

/** The current session (pages render only when signed in). */
export function useSession(): SessionInfo {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in console');
  return s;
}

/** True when the operator may change things (role `admin`); auditors see read-only pages. */
export function useCanWrite(): boolean {
  return useSession().operator.role === 'admin';
}
