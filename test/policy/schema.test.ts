import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { SCHEMA_TEXT } from '../../src/policy/schema.js';
import { toCedarRequest, parseResourceRef } from '../../src/policy/entities.js';
import { POLICY_ACTIONS, type PolicyAction, type ResourceRef } from '../../src/policy/types.js';
import { validatePolicyDir } from '../../src/policy/loader.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { agent } from './helpers.js';

test('the schema parses and declares every action', () => {
  assert.deepEqual(cedar.checkParseSchema(SCHEMA_TEXT), { type: 'success' });
  const json = cedar.schemaToJson(SCHEMA_TEXT);
  assert.equal(json.type, 'success');
  if (json.type !== 'success') return;
  assert.deepEqual(Object.keys(json.json['Tessera']!.actions).sort(), [...POLICY_ACTIONS].sort());
});

test('requests built for every action and resource type are valid against the schema', () => {
  const pairs: [PolicyAction, ResourceRef][] = [
    ['secret.read', { type: 'Secret', path: 'healthcare/prod/db' }],
    ['secret.inject', { type: 'Secret', path: 'root-secret' }],
    ['cred.issue', { type: 'Role', engine: 'postgres', role: 'readonly' }],
    ['tool.call', { type: 'Tool', server: 'records', tool: 'query' }],
    ['http.request', { type: 'Route', route: 'github' }],
    ['token.delegate', { type: 'Agent', spiffeId: 'spiffe://example.org/ns/x/sa/child' }],
  ];
  const p = agent('spiffe://example.org/ns/prod/sa/reader', { attributes: { 'label.team': 'a', attestor: 'k8s' }, chain: ['spiffe://example.org/o'], task: 't1', user: 'alice', purpose: 'p', scope: ['secret:**'] });
  for (const [action, resource] of pairs) {
    const c = toCedarRequest({ principal: p, action, resource });
    // With the schema and request validation on: entity attributes, parents and context all conform.
    const r = cedar.isAuthorized({ ...c, schema: SCHEMA_TEXT, validateRequest: true, policies: { staticPolicies: 'permit(principal, action, resource);' } });
    assert.equal(r.type, 'success', `${action}: ${JSON.stringify(r)}`);
    if (r.type === 'success') assert.equal(r.response.decision, 'allow');
  }
});

test('the shipped example policies validate', () => {
  const r = validatePolicyDir('examples/policies');
  assert.deepEqual(r.errors, []);
  assert.ok(r.policies >= 6);
});

test('resource short forms parse, and bad ones have a stable code', () => {
  assert.deepEqual(parseResourceRef('Secret::healthcare/prod/x'), { type: 'Secret', path: 'healthcare/prod/x' });
  assert.deepEqual(parseResourceRef('Tessera::Role::"postgres/readonly"'), { type: 'Role', engine: 'postgres', role: 'readonly' });
  assert.deepEqual(parseResourceRef('Tool::records/query'), { type: 'Tool', server: 'records', tool: 'query' });
  assert.deepEqual(parseResourceRef('Route::github'), { type: 'Route', route: 'github' });
  for (const bad of ['Secret', 'Bucket::x', 'Role::postgres', 'Tool::/q', 'Secret::""']) {
    assert.throws(() => parseResourceRef(bad), (e) => isTesseraError(e) && e.code === 'TESSERA_POLICY_REQUEST_INVALID', bad);
  }
});

test('context: only args is settable, reserved Cedar keys are refused', () => {
  const p = agent('spiffe://example.org/a');
  const r: ResourceRef = { type: 'Tool', server: 's', tool: 't' };
  assert.throws(() => toCedarRequest({ principal: p, action: 'tool.call', resource: r, context: { depth: 0 } }), (e) => isTesseraError(e) && e.code === 'TESSERA_POLICY_REQUEST_INVALID');
  assert.throws(() => toCedarRequest({ principal: p, action: 'tool.call', resource: r, context: { args: { x: { __entity: { type: 'Tessera::Agent', id: 'x' } } } } }), (e) => isTesseraError(e) && e.code === 'TESSERA_POLICY_REQUEST_INVALID');
  assert.throws(() => toCedarRequest({ principal: p, action: 'tool.call', resource: r, context: { args: 'x' } }), (e) => isTesseraError(e) && e.code === 'TESSERA_POLICY_REQUEST_INVALID');
  assert.throws(() => toCedarRequest({ principal: p, action: 'nope' as PolicyAction, resource: r }), (e) => isTesseraError(e) && e.code === 'TESSERA_POLICY_REQUEST_INVALID');
  const c = toCedarRequest({ principal: p, action: 'tool.call', resource: r, context: { args: { n: 1.5, k: 3, none: null, list: ['a', 'b'] } } });
  assert.deepEqual(c.context['args'], { n: '1.5', k: 3, list: ['a', 'b'] });
});

test('agent attributes come from the SPIFFE path and attestation; labels become tags', () => {
  const c = toCedarRequest({ principal: agent('spiffe://example.org/ns/healthcare/sa/patient-reader', { attributes: { 'label.team': 'records', attestor: 'k8s_psat' } }), action: 'secret.read', resource: { type: 'Secret', path: 'a/b' } });
  const e = c.entities[0]!;
  assert.deepEqual(e.attrs, { spiffe_id: 'spiffe://example.org/ns/healthcare/sa/patient-reader', trust_domain: 'example.org', path: '/ns/healthcare/sa/patient-reader', namespace: 'healthcare', service_account: 'patient-reader', attestor: 'k8s_psat' });
  assert.deepEqual(e.tags, { 'label.team': 'records', attestor: 'k8s_psat', team: 'records' });
  // attestation wins over the path
  const c2 = toCedarRequest({ principal: agent('spiffe://example.org/ns/x/sa/y', { attributes: { namespace: 'real', service_account: 'sa2' } }), action: 'secret.read', resource: { type: 'Secret', path: 'a' } });
  assert.equal(c2.entities[0]!.attrs['namespace'], 'real');
  assert.equal(c2.entities[0]!.attrs['service_account'], 'sa2');
});
