/**
 * Attack on issue 10 (finding A10-4, ADR 0221): the JSON body fields Cedar sees (`context.http.body`)
 * must be the ones every upstream parser sees. JSON.parse keeps the LAST of duplicate names, other
 * parsers the first, so `{"model":"big","model":"small"}` passed a forbid on model != "small" and
 * reached a first-wins upstream as "big"; a non-scalar value (`["big"]`) was invisible to policy.
 * readBodyFields refuses both kinds with 400 TESSERA_PROXY_BODY_INVALID.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readBodyFields, topLevelKeys } from '../../src/proxy/hygiene.js';
import { isTesseraError } from '../../src/shared/errors.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return isTesseraError(e) ? `${e.code} ${e.status} ${e.message}` : `not tessera: ${String(e)}`;
  }
  return 'no error';
};

test('A10-4 duplicate body fields, in any spelling of the name, are refused', () => {
  for (const body of [
    '{"model":"big","model":"small"}',
    '{"model":"small","model":"big"}',
    '{"model":"small", "mod\\u0065l":"big"}',
    '{ "model" : "small" ,\n"model":"big" }',
    '{"x":{"model":"a"},"model":"small","model":"big"}',
  ]) {
    const c = code(() => readBodyFields(body, ['model'], 'openai'));
    assert.match(c, /^TESSERA_PROXY_BODY_INVALID 400 .*"model" appears more than once/, body);
  }
});

test('A10-4 a listed field that is not a scalar is refused; unlisted ones and nested same names are not', () => {
  for (const [body, got] of [['{"model":["big"]}', 'an array'], ['{"model":{"id":"big"}}', 'object'], ['{"model":null}', 'null']] as const) {
    assert.match(code(() => readBodyFields(body, ['model'], 'openai')), new RegExp(`^TESSERA_PROXY_BODY_INVALID 400 .*must be a string, number or boolean \\(got ${got}\\)`), body);
  }
  assert.deepEqual(readBodyFields('{"model":"small","messages":[{"model":"x","model":"y"}],"other":[1,2],"other":3}', ['model'], 'openai'), { model: 'small' });
  assert.deepEqual(readBodyFields('{"model":"s\\"}{,","n":1.5,"b":true}', ['model', 'n', 'b', 'absent'], 'r'), { model: 's"}{,', n: 1.5, b: true });
});

test('A10-4 bodies that do not parse, or are not objects, keep their refusal', () => {
  for (const body of ['', '{"model":', '\ufeff{"model":"x"}', '[{"model":"x"}]', '"model"', 'null', '{"model":"x"} {"model":"y"}']) {
    assert.match(code(() => readBodyFields(body, ['model'], 'r')), /^TESSERA_PROXY_BODY_INVALID 400 /, JSON.stringify(body));
  }
});

test('topLevelKeys: names in order with duplicates, escapes decoded, strings and nesting skipped, any depth', () => {
  assert.deepEqual(topLevelKeys('{"a":1,"b":{"a":2},"c":["a",{"a":3}],"a\\u0062":"x,\\"y\\":1","a":0}'), ['a', 'b', 'c', 'ab', 'a']);
  assert.deepEqual(topLevelKeys('{}'), []);
  const deep = `{"k":${'['.repeat(100_000)}${']'.repeat(100_000)},"k":1}`;
  assert.deepEqual(topLevelKeys(deep), ['k', 'k']);
});
