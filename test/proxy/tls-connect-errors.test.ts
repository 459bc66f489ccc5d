import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TesseraError } from '../../src/shared/errors.js';
import { rawConnect, startHarness, TOKEN } from './tls-harness.js';

test('the authenticator\'s own refusals keep their status: 429 with Retry-After, 403; an unexpected failure is a logged 500, never a hang', async () => {
  const logged: Record<string, unknown>[] = [];
  let mode: 'rate' | 'forbidden' | 'bug' = 'rate';
  const h = await startHarness({
    logger: { error: (obj) => void logged.push(obj) },
    authenticate: async () => {
      if (mode === 'rate') throw new TesseraError('TESSERA_AUTH_RATE_LIMITED', 'too many refused credentials from this address', { limit: 'auth.failures_per_source', retry_after_s: 7 });
      if (mode === 'forbidden') throw new TesseraError('TESSERA_POLICY_DENIED', 'not for you');
      throw new Error('database exploded');
    },
  });
  try {
    const rate = await rawConnect(h.port, 'api.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
    assert.equal(rate.status, 429);
    assert.match(rate.head, /\r\nRetry-After: 7(\r\n|$)/);
    assert.equal(JSON.parse(rate.body).error.code, 'TESSERA_AUTH_RATE_LIMITED');
    rate.socket.destroy();
    mode = 'forbidden';
    const forbidden = await rawConnect(h.port, 'api.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
    assert.equal(forbidden.status, 403);
    assert.equal(JSON.parse(forbidden.body).error.code, 'TESSERA_POLICY_DENIED');
    forbidden.socket.destroy();
    mode = 'bug';
    const bug = await rawConnect(h.port, 'api.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
    assert.equal(bug.status, 500);
    assert.equal(JSON.parse(bug.body).error.code, 'TESSERA_INTERNAL');
    assert.ok(!bug.body.includes('exploded'), 'the cause stays in the log');
    assert.deepEqual(logged, [{ err: 'database exploded' }]);
    bug.socket.destroy();
    assert.equal(h.served.length, 0);
  } finally {
    await h.close();
  }
});
