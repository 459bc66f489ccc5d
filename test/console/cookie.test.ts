import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clearSessionCookie, readSessionCookie, sessionSetCookie, MAX_COOKIE_HEADER } from '../../src/console/cookie.js';

const V = 'A'.repeat(21) + '_-' + 'z9'.repeat(10); // 43 base64url characters
const W = 'B'.repeat(43);
const N = 'tessera_session';

test('cookie reader: the one well-formed session cookie among others', () => {
  assert.equal(V.length, 43);
  assert.deepEqual(readSessionCookie(`${N}=${V}`, N), { kind: 'one', value: V });
  assert.deepEqual(readSessionCookie(`a=1; ${N}=${V}; b=2`, N), { kind: 'one', value: V });
  assert.deepEqual(readSessionCookie(`  ${N} =  ${V}  ;x=y`, N), { kind: 'one', value: V }, 'whitespace around name and value (RFC 6265 §5.2)');
  // Node joins a repeated Cookie header with "; "; a list is read the same way.
  assert.deepEqual(readSessionCookie(['a=1', `${N}=${V}`], N), { kind: 'one', value: V });
  // Other cookies' syntax is not Tessera's business.
  assert.deepEqual(readSessionCookie(`junk; ;;=; "q"=; ${N}=${V}; x=\u00ff\u0000`, N), { kind: 'one', value: V });
});

test('cookie reader: absent', () => {
  assert.deepEqual(readSessionCookie(undefined, N), { kind: 'absent' });
  assert.deepEqual(readSessionCookie('', N), { kind: 'absent' });
  assert.deepEqual(readSessionCookie('a=b; c=d', N), { kind: 'absent' });
  // Names are case-sensitive and exact: neither a prefix nor a suffix nor another case is the cookie.
  assert.deepEqual(readSessionCookie(`Tessera_Session=${V}; xtessera_session=${V}; tessera_session2=${V}; __Host-tessera_session=${V}`, N), { kind: 'absent' });
  // A cookie without "=" is a value with an empty name in browsers; never the session.
  assert.deepEqual(readSessionCookie(`${N}`, N), { kind: 'absent' });
});

test('cookie reader: a second session cookie (cookie tossing) is ambiguous, whichever comes first', () => {
  assert.deepEqual(readSessionCookie(`${N}=${V}; ${N}=${W}`, N), { kind: 'ambiguous' });
  assert.deepEqual(readSessionCookie(`${N}=${W}; a=b; ${N}=${V}`, N), { kind: 'ambiguous' });
  assert.deepEqual(readSessionCookie(`${N}=${V}; ${N}=${V}`, N), { kind: 'ambiguous' }, 'even the same value twice');
  assert.deepEqual(readSessionCookie([`${N}=${V}`, `${N}=${W}`], N), { kind: 'ambiguous' }, 'across repeated headers');
  assert.deepEqual(readSessionCookie(`${N}=${V}; ${N}=`, N), { kind: 'ambiguous' }, 'an empty second one too');
});

test('cookie reader: malformed values are refused, not trimmed into shape', () => {
  for (const bad of ['', 'short', `${V}x`, V.slice(1), `"${V}"`, `${V.slice(0, 42)}=`, `${V.slice(0, 42)}+`, `${V.slice(0, 20)} ${V.slice(21)}`, `${V.slice(0, 42)}\u0100`, '%41'.repeat(15)]) {
    assert.deepEqual(readSessionCookie(`${N}=${bad}`, N), { kind: 'malformed' }, JSON.stringify(bad));
  }
});

test('cookie reader: huge headers are refused whole, and reading stays linear', () => {
  const huge = `${N}=${V}; ${'x=y; '.repeat(MAX_COOKIE_HEADER / 5 + 1)}`;
  assert.ok(huge.length > MAX_COOKIE_HEADER);
  assert.deepEqual(readSessionCookie(huge, N), { kind: 'ambiguous' });
  // Just below the bound: thousands of pairs and one session cookie.
  const big = `${'k=v;'.repeat((MAX_COOKIE_HEADER - 100) / 4)}${N}=${V}`;
  assert.ok(big.length <= MAX_COOKIE_HEADER);
  assert.deepEqual(readSessionCookie(big, N), { kind: 'one', value: V });
  // Pathological: no separators at all.
  assert.deepEqual(readSessionCookie('='.repeat(MAX_COOKIE_HEADER), N), { kind: 'absent' });
});

test('Set-Cookie: HttpOnly, SameSite=Strict, Path=/, Max-Age; Secure and __Host- only when secure', () => {
  assert.equal(sessionSetCookie(V, 28_800, { secure: false }), `tessera_session=${V}; Path=/; Max-Age=28800; HttpOnly; SameSite=Strict`);
  assert.equal(sessionSetCookie(V, 28_800, { secure: true }), `__Host-tessera_session=${V}; Path=/; Max-Age=28800; HttpOnly; SameSite=Strict; Secure`);
  assert.match(clearSessionCookie({ secure: false }), /^tessera_session=; Path=\/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict$/);
  assert.match(clearSessionCookie({ secure: true }), /^__Host-tessera_session=; .*; Secure$/);
  // Nothing else can be put into the header line.
  assert.throws(() => sessionSetCookie(`${V.slice(0, 42)};`, 1, { secure: false }), RangeError);
  assert.throws(() => sessionSetCookie(`${V}\r\nX: y`, 1, { secure: false }), RangeError);
});
