import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerChallenge, challengeValue } from '../../src/shared/www-authenticate.js';

test('bearerChallenge: parameters in order, undefined ones left out, bare Bearer when none', () => {
  assert.equal(bearerChallenge({ realm: 'tessera', error: undefined }), 'Bearer realm="tessera"');
  assert.equal(
    bearerChallenge({ error: 'invalid_token', resource_metadata: 'http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp' }),
    'Bearer error="invalid_token", resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp"',
  );
  assert.equal(bearerChallenge({}), 'Bearer');
});

test('challengeValue: only RFC 6750 §3 quoted-string characters survive; every header it builds is one Node accepts', async () => {
  const { validateHeaderValue } = await import('node:http');
  const hostile = ['say "hi"', 'a\\b', 'admin token (tsr_admin_…)', 'café', 'a\r\nSet-Cookie: x=1', 'nul\u0000', '\u{1F600}', '\u2028', 'tab\there'];
  for (const v of hostile) {
    const out = challengeValue(v);
    assert.match(out, /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/, JSON.stringify(v));
    assert.doesNotThrow(() => validateHeaderValue('www-authenticate', bearerChallenge({ error_description: v, scope: v })), JSON.stringify(v));
  }
  assert.equal(challengeValue('admin token (tsr_admin_…)'), 'admin token (tsr_admin_...)');
  assert.equal(challengeValue('say "hi"'), 'say ?hi?');
  assert.equal(challengeValue('tool:remote/ping'), 'tool:remote/ping');
});
