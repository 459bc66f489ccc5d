import { TesseraError } from '../shared/errors.js';

/** The roles of an operator token (docs/operators.md, ADR 0233). */
export const OPERATOR_ROLES = ['admin', 'auditor'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

/** What a route declares about itself in its fastify `config` (src/server/app.ts FastifyContextConfig). */
export interface RoleRouteConfig {
  /** A POST operator route that changes nothing (a what-if, a verification, a lookup). */
  readonly readOnly?: boolean;
  /** The route answers with a secret's or credential's value. */
  readonly revealsSecret?: boolean;
}

/** Methods that never change anything (RFC 9110 §9.2.1 safe methods Tessera routes). */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

/**
 * Whether `role` may call an operator route with `method` and `config`:
 *  - `admin`: every operator route;
 *  - `auditor`: GET/HEAD and `readOnly` routes, except those with `revealsSecret`.
 */
export function roleAllows(role: OperatorRole, method: string, config: RoleRouteConfig | undefined): boolean {
  if (role === 'admin') return true;
  if (config?.revealsSecret === true) return false;
  return SAFE_METHODS.has(method.toUpperCase()) || config?.readOnly === true;
}

/**
 * Enforces the operator's role for one request to an operator route; called once, by
 * `app.requireAdmin`, after the operator was authenticated (by token or console session).
 * Throws TESSERA_ADMIN_ROLE_FORBIDDEN (403) when the role does not allow the route.
 */
export function checkRole(principal: { readonly role: OperatorRole }, config: RoleRouteConfig | undefined, method: string): void {
  if (roleAllows(principal.role, method, config)) return;
  throw new TesseraError(
    'TESSERA_ADMIN_ROLE_FORBIDDEN',
    config?.revealsSecret === true
      ? 'this operator token has the auditor role, which may read metadata but never a secret value; use an admin token'
      : 'this operator token has the auditor role, which may read but not change anything; use an admin token',
  );
}
