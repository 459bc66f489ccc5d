/**
 * Config keys of the per-principal limits and the Origin/Host guard: safe defaults, and every
 * bad value refused with TESSERA_CONFIG_INVALID naming the key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/index.js';
import { sessionsPerAgent, upstreamProcessesPerAgent } from '../../src/gateway/config.js';
import { TesseraError } from '../../src/shared/errors.js';

function refused(raw: unknown, key: RegExp): void {
  assert.throws(() => parseConfig(raw), (e: unknown) => {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.code, 'TESSERA_CONFIG_INVALID');
    assert.match(e.message, key);
    return true;
  }, JSON.stringify(raw));
}

test('defaults: one agent never gets every place; rates and origins are set', () => {
  const c = parseConfig({});
  assert.deepEqual(c.server.allowed_origins, []);
  assert.deepEqual(c.server.allowed_hosts, []);
  assert.deepEqual(c.tokens.login_rate_limit, { per_identity: { per_second: 10, burst: 100 }, per_source: { per_second: 20, burst: 200 } });
  assert.equal(c.tokens.verified_cache_size, 10_000);
  assert.equal(c.tokens.verified_cache_per_agent, 1000);
  assert.equal(c.policy.cache_size_per_principal, 1000);
  assert.deepEqual(c.gateway.rate_limit, { per_second: 100, burst: 200 });
  assert.equal(c.gateway.max_inflight_per_agent, 128);
  assert.equal(c.gateway.max_inflight_per_session, 16);
  assert.equal(sessionsPerAgent(c.gateway), 100);
  assert.equal(upstreamProcessesPerAgent(c.gateway), 50);
  assert.ok(sessionsPerAgent(c.gateway) < c.gateway.max_sessions);
  // Derived defaults follow the totals and stay below them.
  assert.equal(sessionsPerAgent(parseConfig({ gateway: { max_sessions: 5 } }).gateway), 1);
  assert.equal(sessionsPerAgent(parseConfig({ gateway: { max_sessions: 50 } }).gateway), 5);
  assert.equal(sessionsPerAgent(parseConfig({ gateway: { max_sessions: 1 } }).gateway), 1);
  assert.equal(upstreamProcessesPerAgent(parseConfig({ gateway: { max_upstream_processes: 3 } }).gateway), 1);
  assert.equal(sessionsPerAgent(parseConfig({ gateway: { max_sessions: 10, max_sessions_per_agent: 9 } }).gateway), 9);
});

test('bad values are refused, naming the key', () => {
  refused({ gateway: { max_sessions: 10, max_sessions_per_agent: 10 } }, /gateway\.max_sessions_per_agent: must be less than max_sessions/);
  refused({ gateway: { max_upstream_processes: 4, max_upstream_processes_per_agent: 4 } }, /gateway\.max_upstream_processes_per_agent/);
  refused({ gateway: { max_inflight_per_agent: 4, max_inflight_per_session: 5 } }, /gateway\.max_inflight_per_session/);
  refused({ gateway: { max_sessions_per_agent: 0 } }, /gateway\.max_sessions_per_agent/);
  refused({ gateway: { rate_limit: { per_second: 0 } } }, /gateway\.rate_limit\.per_second/);
  refused({ gateway: { rate_limit: { burst: 0.5 } } }, /gateway\.rate_limit\.burst/);
  refused({ gateway: { rate_limit: { per_second: 1, burst: 1, extra: 1 } } }, /gateway\.rate_limit/);
  refused({ tokens: { login_rate_limit: { per_identity: { per_second: -1 } } } }, /tokens\.login_rate_limit\.per_identity\.per_second/);
  refused({ tokens: { login_rate_limit: { per_source: { burst: 0 } } } }, /tokens\.login_rate_limit\.per_source\.burst/);
  refused({ tokens: { verified_cache_per_agent: 0 } }, /tokens\.verified_cache_per_agent/);
  refused({ policy: { cache_size_per_principal: 0 } }, /policy\.cache_size_per_principal/);
  for (const bad of ['*', 'null', 'https://console.example.com/', 'https://console.example.com/app', 'console.example.com', 'https://*.example.com', 'https://a.example.com, https://b.example.com']) {
    refused({ server: { allowed_origins: [bad] } }, /server\.allowed_origins\.0: expected an origin/);
  }
  for (const bad of ['http://tessera.internal', 'tessera.internal/', 'tessera internal', 'tessera.internal:99999', '*']) {
    refused({ server: { allowed_hosts: [bad] } }, /server\.allowed_hosts\.0: expected a host name/);
  }
  const ok = parseConfig({ server: { allowed_origins: ['https://console.example.com', 'http://localhost:3000'], allowed_hosts: ['tessera.internal', 'tessera.internal:8200', '[::1]:8200'] } });
  assert.equal(ok.server.allowed_origins.length, 2);
});
