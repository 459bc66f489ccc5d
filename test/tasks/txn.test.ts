import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newTxn, txnTimePrefix } from '../../src/tasks/txn.js';
import { TXN_PATTERN } from '../../src/tasks/claims.js';

test('task ids keep the documented form: task_ + 22 base64url characters', () => {
  for (const ms of [0, 1, 1_764_547_200_000, Date.now(), 2 ** 48 - 1, 2 ** 60, -5]) {
    const txn = newTxn(ms);
    assert.match(txn, TXN_PATTERN);
  }
});

test('a later task has a larger id (byte order, as SQLite compares text), so one commit\'s tasks share index pages', () => {
  const times = [0, 1, 63, 64, 65, 4095, 4096, 1_764_547_200_000, 1_764_547_200_001, 1_764_547_263_999, 1_764_547_264_000, 2 ** 48 - 1];
  for (let i = 1; i < times.length; i++) {
    const a = txnTimePrefix(times[i - 1]!);
    const b = txnTimePrefix(times[i]!);
    assert.ok(Buffer.compare(Buffer.from(a), Buffer.from(b)) < 0, `${times[i - 1]} → ${a} must sort before ${times[i]} → ${b}`);
  }
  // Every step of the last character, across its alphabet.
  let prev = txnTimePrefix(1_764_547_200_000);
  for (let ms = 1_764_547_200_001; ms < 1_764_547_200_200; ms++) {
    const cur = txnTimePrefix(ms);
    assert.ok(prev < cur, `${prev} < ${cur}`);
    prev = cur;
  }
  assert.equal(txnTimePrefix(0), '--------');
  assert.equal(txnTimePrefix(2 ** 48 - 1), 'zzzzzzzz');
  assert.equal(txnTimePrefix(2 ** 52), 'zzzzzzzz', 'clamped, never longer');
});

test('task ids of one millisecond differ in their 84 random bits', () => {
  const ms = 1_764_547_200_000;
  const ids = new Set(Array.from({ length: 20_000 }, () => newTxn(ms)));
  assert.equal(ids.size, 20_000);
  for (const id of ids) assert.equal(id.slice(5, 13), txnTimePrefix(ms));
  // The random part is not constant per position (a broken generator would repeat it).
  const tails = new Set([...ids].map((id) => id.slice(13, 16)));
  assert.ok(tails.size > 1000);
});
