/** The audit page's verification result (console/src/lib/audit-verify.ts) and its bounded polling. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pollDelay, summariseVerifyJob } from '../../console/src/lib/audit-verify.js';

const job = (j: Record<string, unknown>) => ({ id: 'ajob_x', kind: 'verify', state: 'done', ...j });

test('running, ok, bad (first bad seq), failed, abandoned', () => {
  assert.deepEqual(summariseVerifyJob(job({ state: 'running', progress: { checked: 40 } })), { status: 'running', checked: 40 });
  assert.deepEqual(summariseVerifyJob(job({ state: 'running' })), { status: 'running', checked: 0 });
  assert.deepEqual(
    summariseVerifyJob(job({ result: { ok: true, checked: 12, checkpoints: 1, problems: [], mode: 'full', to_seq: 12, notes: ['n1'] } })),
    { status: 'ok', checked: 12, toSeq: 12, mode: 'full', notes: ['n1'] },
  );
  const bad = summariseVerifyJob(job({ result: { ok: false, checked: 12, problems: [{ seq: 9, kind: 'modified', message: 'm9' }, { seq: 4, kind: 'deleted', message: 'm4' }, { seq: 0, kind: 'bad_head_signature', message: 'h' }], notes: [] } }));
  assert.equal(bad.status, 'bad');
  assert.equal(bad.status === 'bad' && bad.firstBadSeq, 4);
  assert.equal(bad.status === 'bad' && bad.problems.length, 3);
  const onlyHead = summariseVerifyJob(job({ result: { ok: false, checked: 3, problems: [{ seq: 0, kind: 'bad_head_signature', message: 'h' }] } }));
  assert.equal(onlyHead.status === 'bad' && onlyHead.firstBadSeq, undefined);
  assert.deepEqual(summariseVerifyJob(job({ state: 'failed', result: { error: { code: 'TESSERA_X', message: 'boom' } } })), { status: 'failed', code: 'TESSERA_X', message: 'boom' });
  assert.equal(summariseVerifyJob(job({ state: 'abandoned' })).status, 'failed');
  assert.equal(summariseVerifyJob(job({ result: 'junk' })).status, 'bad', 'a result that does not say ok is not shown as ok');
});

test('polling backs off to 2 s and stops', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => pollDelay(n)), [250, 500, 1000, 2000, 2000, 2000]);
  assert.equal(pollDelay(120), undefined);
  assert.equal(pollDelay(3, 3), undefined);
});
