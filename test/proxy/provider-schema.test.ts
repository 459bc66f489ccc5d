/**
 * The PROVIDERS part's route-key schemas (src/proxy/provider-schema.ts): `preset`, `limits`
 * (window bounds and default, at least one limit, whole numbers ≥ 1) and `credential.oauth`
 * (token URL rules, scope syntax, kv path, auth method default), each bad input with its message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { oauthCredentialField, presetField, routeLimitsField, toRouteLimits } from '../../src/proxy/provider-schema.js';

const issues = (r: { success: boolean; error?: { issues: { message: string }[] } }): string[] => (r.success ? [] : r.error!.issues.map((i) => i.message));

test('preset: openai | anthropic only', () => {
  assert.equal(presetField.parse('openai'), 'openai');
  assert.equal(presetField.parse('anthropic'), 'anthropic');
  for (const bad of ['gemini', 'OpenAI', '', 1]) assert.equal(presetField.safeParse(bad).success, false, String(bad));
});

test('limits: window default 1m and bounds, whole numbers ≥ 1, at least one of requests/tokens', () => {
  assert.deepEqual(toRouteLimits(routeLimitsField.parse({ requests: 600 })), { windowMs: 60_000, requests: 600 });
  assert.deepEqual(toRouteLimits(routeLimitsField.parse({ window: '1h', requests: 10, tokens: 200000 })), { windowMs: 3_600_000, requests: 10, tokens: 200000 });
  assert.deepEqual(issues(routeLimitsField.safeParse({ window: '1m' })), ['limits need `requests`, `tokens` or both']);
  assert.deepEqual(issues(routeLimitsField.safeParse({ window: '500ms', requests: 1 })), ['expected a duration between 1s and 7d such as "10s" or "500ms", got "500ms"']);
  assert.deepEqual(issues(routeLimitsField.safeParse({ window: '8d', requests: 1 })), ['expected a duration between 1s and 7d such as "10s" or "500ms", got "8d"']);
  for (const bad of [{ requests: 0 }, { requests: 1.5 }, { tokens: -1 }, { tokens: '100' }, { requests: 1, burst: 2 }]) assert.equal(routeLimitsField.safeParse(bad).success, false, JSON.stringify(bad));
});

test('credential.oauth: token URL, client id, kv path, scope syntax, auth method', () => {
  const ok = oauthCredentialField.parse({ token_url: 'https://as.example/oauth/token', client_id: 'tessera-proxy', client_secret: 'kv/billing/client-secret', scope: 'invoices:read invoices:write' });
  assert.deepEqual(ok, { token_url: 'https://as.example/oauth/token', client_id: 'tessera-proxy', client_secret: 'kv/billing/client-secret', scope: 'invoices:read invoices:write', auth_method: 'client_secret_basic' });
  assert.equal(oauthCredentialField.parse({ ...ok, auth_method: 'client_secret_post' }).auth_method, 'client_secret_post');
  assert.deepEqual(issues(oauthCredentialField.safeParse({ ...ok, token_url: 'http://as.example/token' })), ['token_url must use https (http only to a loopback address)']);
  assert.deepEqual(issues(oauthCredentialField.safeParse({ ...ok, scope: 'a  b' })), ['space-separated scope tokens (RFC 6749 §3.3)']);
  assert.deepEqual(issues(oauthCredentialField.safeParse({ ...ok, scope: 'a"b' })), ['space-separated scope tokens (RFC 6749 §3.3)']);
  for (const bad of [
    { ...ok, client_secret: '../etc/passwd' },
    { ...ok, client_id: '' },
    { ...ok, auth_method: 'private_key_jwt' },
    { ...ok, extra: 1 },
    { ...ok, audience: 'a b' },
  ]) assert.equal(oauthCredentialField.safeParse(bad).success, false, JSON.stringify(bad));
});
