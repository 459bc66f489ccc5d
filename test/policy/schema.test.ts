import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { SCHEMA_TEXT } from '../../src/policy/schema.js';
import { toCedarRequest, parseResourceRef } from '../../src/policy/entities.js';
import { POLICY_ACTIONS, type PolicyAction, type ResourceRef } from '../../src/policy/types.js';
import { validatePolicyDir } from '../../src/policy/loader.js';
import { isTesseraError } from '../../src/shared/errors.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
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
    ['token.delegate', { type: 'SubAgent', label: 'summarizer' }],
  ];
  const p = agent('spiffe://example.org/ns/prod/sa/reader', { attributes: { 'label.team': 'a', attestor: 'k8s', namespace: 'prod', service_account: 'reader' }, attestor: 'k8s', attestorKind: 'kubernetes', chain: ['spiffe://example.org/o'], task: 't1', rootTask: 't0', label: 'helper', tctx: {}, user: 'alice', purpose: 'p', scope: ['secret:**'] });
  for (const [action, resource] of pairs) {
    // token.delegate carries the task being created (built by the token exchange). Task facts are
    // an open record like args (schema.ts): validated requests carry none.
    const context = action === 'token.delegate' ? { delegation: { scopes: ['secret:a/**'], purpose: 'p', depth: 2, max_depth: 3, bound: false, tctx: {} } } : undefined;
    const c = toCedarRequest({ principal: p, action, resource, ...(context ? { context } : {}) });
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

test('agent attributes come only from attestation: Kubernetes ones only from a kubernetes attestor, never from the path', () => {
  const entity = (p: AgentPrincipal) => toCedarRequest({ principal: p, action: 'secret.read', resource: { type: 'Secret', path: 'a/b' } }).entities[0]!;
  const k8s = entity(agent('spiffe://example.org/ns/healthcare/sa/patient-reader', {
    attestor: 'k8s-prod', attestorKind: 'kubernetes',
    attributes: { namespace: 'healthcare', service_account: 'patient-reader', pod: 'p-1', 'label.team': 'records', attestor: 'k8s-prod' },
  }));
  assert.deepEqual(k8s.attrs, { spiffe_id: 'spiffe://example.org/ns/healthcare/sa/patient-reader', trust_domain: 'example.org', path: '/ns/healthcare/sa/patient-reader', namespace: 'healthcare', service_account: 'patient-reader', attestor: 'k8s-prod', attestor_kind: 'kubernetes' });
  assert.deepEqual(k8s.tags, { namespace: 'healthcare', service_account: 'patient-reader', pod: 'p-1', 'label.team': 'records', attestor: 'k8s-prod', team: 'records' });

  // The same Kubernetes-shaped path from every other kind of attestor (or none): no namespace,
  // no service account, no pod — as attributes or as tags — whatever the attributes carry.
  const forged = { namespace: 'healthcare', service_account: 'patient-reader', pod: 'p-1' };
  for (const [attestor, attestorKind] of [['join_token', 'join_token'], ['gitlab', 'jwt'], ['spire', 'spiffe'], [undefined, undefined]] as const) {
    const e = entity(agent('spiffe://example.org/ns/healthcare/sa/patient-reader', { ...(attestor ? { attestor, attestorKind } : {}), attributes: forged }));
    assert.equal(e.attrs['namespace'], '', String(attestorKind));
    assert.equal(e.attrs['service_account'], '', String(attestorKind));
    assert.equal(e.attrs['attestor'], attestor ?? '');
    assert.equal(e.attrs['attestor_kind'], attestorKind ?? '');
    for (const k of ['namespace', 'service_account', 'pod']) assert.equal(e.tags?.[k], undefined, `${String(attestorKind)}: tag ${k}`);
  }

  // Labels are tags, also under their plain name — except names Tessera itself sets.
  const labelled = entity(agent('spiffe://example.org/ci/x/main', {
    attestor: 'gitlab', attestorKind: 'jwt',
    attributes: { 'label.team': 'a', 'label.namespace': 'healthcare', 'label.service_account': 'break-glass', 'label.pod': 'p', 'label.attestor': 'k8s-prod', 'label.attestor_kind': 'kubernetes', 'label.trust_domain': 'x', 'label.issuer': 'y' },
  }));
  assert.equal(labelled.tags?.['team'], 'a');
  for (const k of ['namespace', 'service_account', 'pod', 'attestor', 'attestor_kind', 'trust_domain', 'issuer']) assert.equal(labelled.tags?.[k], undefined, `label alias ${k}`);
  assert.equal(labelled.attrs['attestor'], 'gitlab');
});
