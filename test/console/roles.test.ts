import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claimAt, displayNameOf, roleOf } from '../../src/console/roles.js';

const roles = {
  admin: [{ claim: 'groups', equals: 'ops' }, { claim: 'realm_access.roles', equals: 'tessera-admin' }],
  auditor: [{ claim: 'groups', equals: 'security' }, { claim: 'level', equals: 3 }],
};

test('roles from claims: admin first, arrays contain, dotted paths, no coercion, own properties only', () => {
  assert.equal(roleOf({ groups: ['ops', 'security'] }, roles), 'admin');
  assert.equal(roleOf({ groups: ['security'] }, roles), 'auditor');
  assert.equal(roleOf({ groups: 'ops' }, roles), 'admin', 'a single string claim');
  assert.equal(roleOf({ realm_access: { roles: ['tessera-admin'] } }, roles), 'admin');
  assert.equal(roleOf({ level: 3 }, roles), 'auditor');
  for (const claims of [{}, { groups: [] }, { groups: ['Ops'] }, { groups: ['ops '] }, { groups: [['ops']] }, { level: '3' }, { level: [3.0001] }, { realm_access: 'tessera-admin' }, { 'realm_access.roles': ['tessera-admin'] }, { groups: { ops: true } }]) {
    assert.equal(roleOf(claims, roles), undefined, JSON.stringify(claims));
  }
  // Inherited properties are not claims.
  assert.equal(claimAt(Object.create({ groups: ['ops'] }) as Record<string, unknown>, 'groups'), undefined);
  assert.equal(claimAt({ a: { constructor: 1 } }, 'a.toString'), undefined);
});

test('display names: preferred_username, email, sub; cleaned to [A-Za-z0-9._@-]{1,64}', () => {
  assert.equal(displayNameOf({ preferred_username: 'ada', email: 'a@x', sub: 's' }), 'ada');
  assert.equal(displayNameOf({ email: 'ada@example.org', sub: 's' }), 'ada@example.org');
  assert.equal(displayNameOf({ sub: 'auth0|123 <script>' }), 'auth0_123__script_');
  assert.equal(displayNameOf({ sub: 'x'.repeat(100) }).length, 64);
  assert.equal(displayNameOf({ email: 42, sub: '' }), 'oidc-user');
});
