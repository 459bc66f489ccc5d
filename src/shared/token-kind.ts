import { JWT_SOURCE } from './credential-like.js';

/**
 * What kind of Tessera credential a presented bearer value looks like, from its shape alone
 * (nothing is verified): an operator's admin token (`tsr_admin_…`), a one-time join token
 * (`tsr_join_…`), a JWT (an agent token, or a workload token), or something else. Used to say
 * "this is an agent token; operator endpoints need an admin token" instead of a bare refusal,
 * on the server and, before any request, in the CLI.
 */
export type TokenKind = 'admin' | 'join' | 'jwt' | 'other';

const JWT_WHOLE = new RegExp(`^${JWT_SOURCE}$`);

export function tokenKindOf(token: string): TokenKind {
  if (token.startsWith('tsr_admin_')) return 'admin';
  if (token.startsWith('tsr_join_')) return 'join';
  if (JWT_WHOLE.test(token)) return 'jwt';
  return 'other';
}

/** Words for each kind, for messages ("this is an admin token (tsr_admin_…)"). */
export const TOKEN_KIND_WORDS: Readonly<Record<TokenKind, string>> = {
  admin: 'an admin token (tsr_admin_…)',
  join: 'a join token (tsr_join_…)',
  jwt: 'an agent token (a JWT)',
  other: 'not a Tessera token',
};
