import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpiffeId, spiffeIdProblem, isSpiffeId, type SpiffeIdProblem } from '../../src/identity/spiffe-id.js';
import { TesseraError } from '../../src/shared/errors.js';

const VALID: [string, string, string][] = [
  ['spiffe://example.org', 'example.org', ''],
  ['spiffe://example.org/ns/prod/sa/agent', 'example.org', '/ns/prod/sa/agent'],
  ['spiffe://td-1_x.y/A-Za_z.09', 'td-1_x.y', '/A-Za_z.09'],
  ['spiffe://1.2.3.4/x', '1.2.3.4', '/x'],
  ['spiffe://td/...', 'td', '/...'], // "..." is not a dot segment
  ['spiffe://td/.hidden/a..b', 'td', '/.hidden/a..b'],
  [`spiffe://${'a'.repeat(255)}/x`, 'a'.repeat(255), '/x'],
  [`spiffe://td/${'a'.repeat(2048 - 'spiffe://td/'.length)}`, 'td', `/${'a'.repeat(2048 - 'spiffe://td/'.length)}`],
];

const INVALID: [string, SpiffeIdProblem][] = [
  ['', 'empty'],
  ['http://example.org/x', 'scheme'],
  ['SPIFFE://example.org/x', 'scheme'],
  ['Spiffe://example.org/x', 'scheme'],
  ['spiffe:/example.org/x', 'scheme'],
  ['example.org/x', 'scheme'],
  ['spiffe://', 'trust_domain_empty'],
  ['spiffe:///path', 'trust_domain_empty'],
  ['spiffe://Example.org/x', 'trust_domain_chars'],
  ['spiffe://exa mple.org', 'trust_domain_chars'],
  ['spiffe://exa%20mple.org', 'trust_domain_chars'],
  ['spiffe://ex~ample.org', 'trust_domain_chars'],
  ['spiffe://bücher.example', 'trust_domain_chars'],
  [`spiffe://${'a'.repeat(256)}`, 'trust_domain_too_long'],
  ['spiffe://user@example.org/x', 'userinfo'],
  ['spiffe://user:pw@example.org/x', 'userinfo'],
  ['spiffe://example.org:8443/x', 'port'],
  ['spiffe://example.org:/x', 'port'],
  ['spiffe://example.org/x?y=1', 'query'],
  ['spiffe://example.org?x', 'query'],
  ['spiffe://example.org/x#frag', 'fragment'],
  ['spiffe://example.org/', 'path_trailing_slash'],
  ['spiffe://example.org/a/', 'path_trailing_slash'],
  ['spiffe://example.org//a', 'path_empty_segment'],
  ['spiffe://example.org/a//b', 'path_empty_segment'],
  ['spiffe://example.org/.', 'path_dot_segment'],
  ['spiffe://example.org/a/./b', 'path_dot_segment'],
  ['spiffe://example.org/a/..', 'path_dot_segment'],
  ['spiffe://example.org/../etc', 'path_dot_segment'],
  ['spiffe://example.org/a%2Fb', 'path_chars'],
  ['spiffe://example.org/a b', 'path_chars'],
  ['spiffe://example.org/a+b', 'path_chars'],
  ['spiffe://example.org/a:b', 'path_chars'],
  ['spiffe://example.org/ü', 'path_chars'],
  ['spiffe://example.org/a\\b', 'path_chars'],
  [`spiffe://td/${'a'.repeat(2049 - 'spiffe://td/'.length)}`, 'too_long'],
];

test('valid SPIFFE IDs parse into trust domain and path', () => {
  for (const [id, td, path] of VALID) {
    const parsed = parseSpiffeId(id);
    assert.equal(parsed.trustDomain, td, id);
    assert.equal(parsed.path, path, id);
    assert.equal(parsed.id, id);
    assert.equal(isSpiffeId(id), true);
  }
  assert.deepEqual(parseSpiffeId('spiffe://td/a/b').segments, ['a', 'b']);
  assert.deepEqual(parseSpiffeId('spiffe://td').segments, []);
});

test('each class of invalid SPIFFE ID is refused with TESSERA_SPIFFE_ID_INVALID and its reason', () => {
  for (const [id, reason] of INVALID) {
    assert.equal(spiffeIdProblem(id), reason, `${id.slice(0, 60)} → ${reason}`);
    assert.equal(isSpiffeId(id), false);
    assert.throws(
      () => parseSpiffeId(id),
      (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_SPIFFE_ID_INVALID' && e.details?.reason === reason && e.message.length > 20,
      id.slice(0, 60),
    );
  }
});

test('non-strings are refused', () => {
  for (const v of [undefined, null, 42, {}, ['spiffe://td/x']]) {
    assert.throws(() => parseSpiffeId(v), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_SPIFFE_ID_INVALID');
    assert.equal(isSpiffeId(v), false);
  }
});

test('a SPIFFE ID that carries a credential shape is refused with TESSERA_REQUEST_CREDENTIAL_LIKE (it would be audited in clear)', () => {
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4In0.c2lnbmF0dXJl';
  const tsr = `tsr_join_${'a'.repeat(30)}`;
  for (const id of [`spiffe://example.org/ns/${jwt}`, `spiffe://example.org/${tsr}/x`, `spiffe://${tsr}`, `spiffe://${tsr}/sa/a`]) {
    assert.equal(spiffeIdProblem(id), 'credential_like', id);
    assert.throws(() => parseSpiffeId(id), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_REQUEST_CREDENTIAL_LIKE' && !e.message.includes('aaaaaaaaaa'));
  }
  assert.equal(spiffeIdProblem('spiffe://example.org/ns/tsr_short'), null, 'a name merely starting like a token is fine');
});
