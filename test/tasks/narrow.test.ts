/**
 * The narrowing rules (src/tasks/narrow.ts) and the task parameters (src/tasks/params.ts), pure:
 * every widening and every malformed value refused with its exact code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { narrowScope, childExpiry, childDepth, rootMaxDepth, narrowAudience, extendTctx, childBinding } from '../../src/tasks/narrow.js';
import { parseTaskParams, parseScopeParam, refuseClaimParameters, CLAIM_PARAMETERS } from '../../src/tasks/params.js';
import { isTesseraError } from '../../src/shared/errors.js';

const code = (c: string) => (e: unknown): boolean => {
  assert.ok(isTesseraError(e), `expected a TesseraError, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  return true;
};

test('scope: a child scope within the parent is granted as asked', () => {
  assert.deepEqual(narrowScope(['secret:a/**', 'tool:records/*'], ['secret:a/b', 'tool:records/query'], 'exact'), ['secret:a/b', 'tool:records/query']);
  assert.deepEqual(narrowScope(['secret:a/**'], ['secret:a/**'], 'exact'), ['secret:a/**']);
  assert.deepEqual(narrowScope(['secret:a/**'], ['secret:a/*/c/**'], 'exact'), ['secret:a/*/c/**']);
});

test('scope: every glob trick that widens is refused with TESSERA_TASK_SCOPE_WIDENED (never trimmed)', () => {
  const cases: [string[], string][] = [
    [['secret:a/*'], 'secret:a/**'], // ** is wider than *
    [['secret:a/*'], 'secret:a/b/c'], // * is one segment only
    [['secret:a/b'], 'secret:a/bc'], // a prefix look-alike is another secret
    [['secret:a/b'], 'secret:a/b/c'], // a secret is not a folder
    [['secret:a/b/**'], 'secret:a/b'], // trailing ** means one or more
    [['secret:a/**'], 'secret:**'],
    [['secret:a/**'], 'secret:*/b'],
    [['tool:records/query'], 'tool:records/*'],
    [['tool:records/*'], 'tool:*/query'],
    [['tool:records/*'], 'secret:records/x'], // kinds never cross
    [['cred:postgres/readonly'], 'cred:postgres/readwrite'],
    [['http:github'], 'http:*'],
  ];
  for (const [parent, child] of cases) assert.throws(() => narrowScope(parent, [child], 'exact'), code('TESSERA_TASK_SCOPE_WIDENED'), `${parent} → ${child}`);
});

test('scope: trim gives the covered part only when asked, and refuses when nothing is covered', () => {
  assert.deepEqual(narrowScope(['secret:a/**'], ['secret:**'], 'trim'), ['secret:a/**']);
  assert.deepEqual(narrowScope(['secret:a/**', 'tool:x/*'], ['secret:a/b', 'secret:z/q', 'tool:*/*'], 'trim'), ['secret:a/b', 'tool:x/*']);
  assert.deepEqual(narrowScope(['secret:a/b'], ['secret:a/b', 'secret:a/b'], 'trim'), ['secret:a/b']);
  assert.throws(() => narrowScope(['secret:a/**'], ['secret:z/**', 'tool:t/x'], 'trim'), code('TESSERA_TASK_SCOPE_WIDENED'));
});

test('scope parameter: encoded separators, unknown forms, control characters, credential shapes and duplicates', () => {
  assert.deepEqual(parseScopeParam('secret:a/b tool:x/y secret:a/b'), ['secret:a/b', 'tool:x/y']);
  for (const bad of ['secret:a%2Fb', 'secret:a%2fb/**', 'file:/etc/passwd', 'secret:', 'secret:a//b', 'secret:../x', 'secret:a/b*', 'tool:x', 'cred:pg', 'secret:a\tb', 'secret:a  tool:x/y', ' secret:a', 'secret:a\u202eb', 'SECRET:a', 'secret:a/./b']) {
    assert.throws(() => parseScopeParam(bad), code('TESSERA_OAUTH_INVALID_SCOPE'), JSON.stringify(bad));
  }
  assert.throws(() => parseScopeParam(`secret:a/${'x'.repeat(600)}`), code('TESSERA_OAUTH_INVALID_SCOPE'));
  assert.throws(() => parseScopeParam(Array.from({ length: 65 }, (_, i) => `secret:s${i}`).join(' ')), code('TESSERA_OAUTH_INVALID_SCOPE'));
  assert.throws(() => parseScopeParam('secret:tsr_admin_AAAAAAAAAAAAAAAAAAAAAAAAAAAA'), code('TESSERA_REQUEST_CREDENTIAL_LIKE'));
});

test('lifetime: the default fits under the parent; a request beyond the parent or tokens.task_ttl is refused', () => {
  const now = 1_000_000_000_000;
  const parentExp = now / 1000 + 600;
  assert.equal(childExpiry(now, parentExp, undefined, 900_000, 900_000, 'parent'), parentExp, 'the default is shortened to the parent');
  assert.equal(childExpiry(now, parentExp, undefined, 60_000, 900_000, 'parent'), now / 1000 + 60);
  assert.equal(childExpiry(now, parentExp, 120_000, 900_000, 900_000, 'parent'), now / 1000 + 120);
  assert.equal(childExpiry(now, parentExp, 600_000, 900_000, 900_000, 'parent'), parentExp, 'exactly up to the parent');
  assert.throws(() => childExpiry(now, parentExp, 601_000, 900_000, 900_000, 'parent'), code('TESSERA_TASK_LIFETIME_EXCEEDED'));
  assert.throws(() => childExpiry(now, now / 1000 + 10_000, 901_000, 900_000, 900_000, 'parent'), code('TESSERA_TASK_LIFETIME_EXCEEDED'));
  // A parent accepted within the clock skew but already past exp: nothing left to give.
  assert.throws(() => childExpiry(now, now / 1000 - 5, undefined, 900_000, 900_000, 'parent'), code('TESSERA_TASK_LIFETIME_EXCEEDED'));
  assert.throws(() => childExpiry(now, now / 1000, undefined, 900_000, 900_000, 'parent'), code('TESSERA_TASK_LIFETIME_EXCEEDED'));
});

test('depth: +1 within max_depth, which a child may lower but never raise', () => {
  assert.deepEqual(childDepth({ depth: 0, maxDepth: 3 }, undefined), { depth: 1, maxDepth: 3 });
  assert.deepEqual(childDepth({ depth: 1, maxDepth: 3 }, 2), { depth: 2, maxDepth: 2 });
  assert.throws(() => childDepth({ depth: 3, maxDepth: 3 }, undefined), code('TESSERA_TASK_DEPTH_EXCEEDED'));
  assert.throws(() => childDepth({ depth: 0, maxDepth: 0 }, undefined), code('TESSERA_TASK_DEPTH_EXCEEDED'));
  assert.throws(() => childDepth({ depth: 0, maxDepth: 2 }, 3), code('TESSERA_TASK_MAX_DEPTH_RAISED'));
  assert.throws(() => childDepth({ depth: 1, maxDepth: 3 }, 1), code('TESSERA_TASK_PARAMETER_INVALID'));
  assert.equal(rootMaxDepth(undefined, 3), 3);
  assert.equal(rootMaxDepth(0, 3), 0);
  assert.throws(() => rootMaxDepth(4, 3), code('TESSERA_TASK_MAX_DEPTH_RAISED'));
});

test('audience: only the parent\'s audiences', () => {
  assert.deepEqual(narrowAudience(['https://t', 'https://t/mcp'], [], 'parent'), ['https://t', 'https://t/mcp']);
  assert.deepEqual(narrowAudience(['https://t', 'https://t/mcp'], ['https://t/mcp', 'https://t/mcp'], 'parent'), ['https://t/mcp']);
  assert.throws(() => narrowAudience(['https://t'], ['https://t/mcp'], 'parent'), code('TESSERA_TASK_AUDIENCE_WIDENED'));
});

test('task facts: inherited, extended, never changed; bounded with the parent\'s', () => {
  assert.deepEqual(extendTctx({ ticket: 'INC-1' }, undefined), { ticket: 'INC-1' });
  assert.deepEqual(extendTctx({ ticket: 'INC-1' }, { ticket: 'INC-1', step: '2' }), { ticket: 'INC-1', step: '2' });
  assert.throws(() => extendTctx({ ticket: 'INC-1' }, { ticket: 'INC-2' }), code('TESSERA_TASK_CONTEXT_CHANGED'));
  const full = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v']));
  assert.throws(() => extendTctx(full, { extra: 'v' }), code('TESSERA_TASK_PARAMETER_INVALID'));
  const big = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v'.repeat(250)]));
  assert.throws(() => extendTctx({}, big), code('TESSERA_TASK_PARAMETER_INVALID'));
});

test('binding: only the proved key binds; a bound parent or actor token must be proven with its own key; labels may be required to bind', () => {
  const k1 = 'A'.repeat(43);
  const k2 = 'B'.repeat(43);
  const k3 = 'C'.repeat(43);
  const refused = (c: string, field?: string) => (e: unknown) => isTesseraError(e) && e.code === c && (field === undefined || e.details?.field === field);
  assert.equal(childBinding({}), undefined);
  assert.equal(childBinding({ proofJkt: k1 }), k1, 'a proof binds the new token to its key');
  // A bound subject token (parent task or the agent token opening a root task).
  assert.equal(childBinding({ subjectJkt: k1, proofJkt: k1 }), k1, 'a bound parent yields a child bound to the same key');
  assert.throws(() => childBinding({ subjectJkt: k1 }), refused('TESSERA_TASK_BINDING_REQUIRED', 'subject_token'));
  assert.throws(() => childBinding({ subjectJkt: k1, proofJkt: k2 }), refused('TESSERA_TASK_KEY_MISMATCH', 'subject_token'));
  // A bound actor token (the sub-agent's own agent token): the proof must be by the sub-agent's key.
  assert.equal(childBinding({ actorJkt: k2, proofJkt: k2 }), k2, 'an unbound parent, a bound sub-agent: the child is bound to the sub-agent\'s key');
  assert.throws(() => childBinding({ actorJkt: k2 }), refused('TESSERA_TASK_BINDING_REQUIRED', 'actor_token'));
  assert.throws(() => childBinding({ actorJkt: k2, proofJkt: k3 }), refused('TESSERA_TASK_KEY_MISMATCH', 'actor_token'));
  assert.throws(() => childBinding({ subjectJkt: k1, actorJkt: k2, proofJkt: k1 }), refused('TESSERA_TASK_KEY_MISMATCH', 'actor_token'), 'parent and sub-agent bound to different keys: one proof cannot prove both');
  assert.throws(() => childBinding({ subjectJkt: k1, actorJkt: k2, proofJkt: k2 }), refused('TESSERA_TASK_KEY_MISMATCH', 'subject_token'));
  assert.equal(childBinding({ subjectJkt: k1, actorJkt: k1, proofJkt: k1 }), k1);
  // tokens.delegation.require_dpop_for_labels.
  assert.throws(() => childBinding({ required: 'labels must bind' }), refused('TESSERA_TASK_BINDING_REQUIRED'));
  assert.equal(childBinding({ required: 'labels must bind', proofJkt: k2 }), k2);
});

test('parameters: purpose, tctx, label, requested_ttl, max_depth, scope_mode — each bad value refused naming its field', () => {
  const bad: [Record<string, string>, string, string][] = [
    [{ purpose: '' }, 'TESSERA_TASK_PARAMETER_INVALID', 'purpose'],
    [{ purpose: 'x'.repeat(513) }, 'TESSERA_TASK_PARAMETER_INVALID', 'purpose'],
    [{ purpose: 'line\nbreak' }, 'TESSERA_TASK_PARAMETER_INVALID', 'purpose'],
    [{ purpose: 'bidi \u202e override' }, 'TESSERA_TASK_PARAMETER_INVALID', 'purpose'],
    [{ purpose: 'escape \u001b[31m' }, 'TESSERA_TASK_PARAMETER_INVALID', 'purpose'],
    [{ purpose: ' padded' }, 'TESSERA_TASK_PARAMETER_INVALID', 'purpose'],
    [{ tctx: 'not json' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: '["a"]' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: 'null' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: '"text"' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: '{"n":1}' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: '{"o":{"deep":"x"}}' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: '{"b":true}' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: '{"a":null}' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: '{"bad key":"x"}' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: '{"__proto__":"x"}' }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: JSON.stringify({ v: 'x'.repeat(257) }) }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: JSON.stringify({ v: 'a\u0007b' }) }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: JSON.stringify(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']))) }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ tctx: JSON.stringify({ v: 'x'.repeat(5000) }) }, 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [{ label: '' }, 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [{ label: 'has space' }, 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [{ label: 'tab\there' }, 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [{ label: 'nul\u0000' }, 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [{ label: 'esc\u001b[2J' }, 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [{ label: 'rtl\u202e' }, 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [{ label: '-leading' }, 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [{ label: 'x'.repeat(65) }, 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [{ requested_ttl: '-5' }, 'TESSERA_TASK_PARAMETER_INVALID', 'requested_ttl'],
    [{ requested_ttl: '0' }, 'TESSERA_TASK_PARAMETER_INVALID', 'requested_ttl'],
    [{ requested_ttl: '1.5' }, 'TESSERA_TASK_PARAMETER_INVALID', 'requested_ttl'],
    [{ requested_ttl: '1e3' }, 'TESSERA_TASK_PARAMETER_INVALID', 'requested_ttl'],
    [{ requested_ttl: '99999999999' }, 'TESSERA_TASK_PARAMETER_INVALID', 'requested_ttl'],
    [{ requested_ttl: ' 60' }, 'TESSERA_TASK_PARAMETER_INVALID', 'requested_ttl'],
    [{ max_depth: '-1' }, 'TESSERA_TASK_PARAMETER_INVALID', 'max_depth'],
    [{ max_depth: '9' }, 'TESSERA_TASK_PARAMETER_INVALID', 'max_depth'],
    [{ max_depth: '1000000000000' }, 'TESSERA_TASK_PARAMETER_INVALID', 'max_depth'],
    [{ max_depth: 'two' }, 'TESSERA_TASK_PARAMETER_INVALID', 'max_depth'],
    [{ scope_mode: 'TRIM' }, 'TESSERA_TASK_PARAMETER_INVALID', 'scope_mode'],
    [{ purpose: 'see eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4eHh4In0.c2lnbmF0dXJl' }, 'TESSERA_REQUEST_CREDENTIAL_LIKE', 'purpose'],
    [{ tctx: JSON.stringify({ k: `tsr_join_${'A'.repeat(30)}` }) }, 'TESSERA_REQUEST_CREDENTIAL_LIKE', 'tctx'],
  ];
  for (const [raw, c, field] of bad) {
    assert.throws(() => parseTaskParams(raw), (e: unknown) => {
      assert.ok(isTesseraError(e));
      assert.equal(e.code, c, `${JSON.stringify(raw)}: ${e.message}`);
      assert.equal(e.details?.field, field);
      return true;
    });
  }
  const ok = parseTaskParams({ scope: 'secret:a/**', purpose: 'triage INC-42 — ünïcode ok', tctx: '{"ticket":"INC-42"}', requested_ttl: '300', max_depth: '2', label: 'summarizer.v2', scope_mode: 'trim' });
  assert.deepEqual(ok, { scope: ['secret:a/**'], purpose: 'triage INC-42 — ünïcode ok', tctx: { ticket: 'INC-42' }, ttlMs: 300_000, maxDepth: 2, label: 'summarizer.v2', scopeMode: 'trim' });
});

test('parameters named like claims are refused: a client never sends act, sub, txn, depth, cnf …', () => {
  for (const name of CLAIM_PARAMETERS) {
    assert.throws(() => refuseClaimParameters({ grant_type: 'x', [name]: '{"sub":"spiffe://evil/x"}' }), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_TASK_CLAIM_PARAMETER' && e.details?.field === name);
  }
  refuseClaimParameters({ grant_type: 'x', scope: 's', purpose: 'p', max_depth: '1', audience: 'a' });
});
