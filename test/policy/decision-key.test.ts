/**
 * principalDecisionKey: two principals share a key only when Cedar sees them the same. Every
 * principal field Cedar reads (entities and context) changes the key; attribute order does not.
 * (The gateway's "may use this server" cache once left out the DPoP binding and the attestor,
 * so a bound token's permit was reused for an unbound caller of the same agent.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { principalDecisionKey } from '../../src/policy/entities.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';

const base: AgentPrincipal = {
  spiffeId: 'spiffe://tessera.test/ns/a/sa/b', trustDomain: 'tessera.test', path: '/ns/a/sa/b', attributes: { namespace: 'a', service_account: 'b' },
  attestor: 'k8s', attestorKind: 'kubernetes', jti: 'j1', expiresAt: 1, tokenKind: 'task', subject: 'spiffe://tessera.test/ns/a/sa/b', audience: ['x'],
  task: 't1', rootTask: 't0', chain: ['spiffe://tessera.test/ns/a/sa/o'], scope: ['tool:s/*'], purpose: 'p', label: 'l', tctx: { ticket: '1' },
  user: 'corp:ann', userClaims: { issuer: 'corp', attrs: { dept: 'x' }, groups: ['g1', 'g2'] },
} as AgentPrincipal;

test('every field Cedar sees changes the key; what it does not see, or attribute order, does not', () => {
  const k = principalDecisionKey(base);
  const changes: [string, Partial<AgentPrincipal>][] = [
    ['cnf', { cnf: { jkt: 'k' } }], ['attestor', { attestor: 'ci' }], ['attestorKind', { attestorKind: 'jwt' } as Partial<AgentPrincipal>],
    ['attributes', { attributes: { namespace: 'a', service_account: 'c' } }], ['spiffeId', { spiffeId: 'spiffe://tessera.test/ns/a/sa/c' }],
    ['task', { task: 't2' }], ['rootTask', { rootTask: 't9' }], ['chain', { chain: [] }], ['scope', { scope: ['tool:s/x'] }], ['purpose', { purpose: 'q' }],
    ['label', { label: 'm' }], ['tctx', { tctx: { ticket: '2' } }], ['user', { user: 'corp:bob' }],
    ['userClaims.groups', { userClaims: { issuer: 'corp', attrs: { dept: 'x' }, groups: ['g1'] } }],
    ['userClaims.attrs', { userClaims: { issuer: 'corp', attrs: { dept: 'y' }, groups: ['g1', 'g2'] } }],
  ];
  for (const [what, over] of changes) assert.notEqual(principalDecisionKey({ ...base, ...over } as AgentPrincipal), k, what);
  assert.equal(principalDecisionKey({ ...base, jti: 'j2', expiresAt: 2 }), k, 'the token id and expiry are not seen by Cedar');
  assert.equal(principalDecisionKey({ ...base, attributes: { service_account: 'b', namespace: 'a' }, userClaims: { issuer: 'corp', attrs: { dept: 'x' }, groups: ['g2', 'g1'] } }), k, 'order does not matter');
});
