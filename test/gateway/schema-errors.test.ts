/**
 * Arguments that fail an upstream MCP tool's inputSchema are reported per argument, in the words
 * declarative tools use (docs/gateway-tools.md): Ajv's real output (the MCP SDK's validator, as
 * the gateway core runs it) rewritten — including the names of arguments that are not allowed,
 * which Ajv's own text leaves out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { JsonSchemaType } from '@modelcontextprotocol/sdk/validation/types.js';
import { describeArgumentErrors } from '../../src/gateway/schema-errors.js';

const schema = {
  type: 'object',
  properties: {
    city: { type: 'string' },
    days: { type: 'integer', minimum: 1, maximum: 14 },
    where: { type: 'object', properties: { lat: { type: 'number' } }, additionalProperties: false },
    tags: { type: 'array', items: { type: 'object', properties: { k: { type: 'string' } }, required: ['k'], additionalProperties: false } },
  },
  required: ['city'],
  additionalProperties: false,
};
const validate = new AjvJsonSchemaValidator().getValidator(schema as JsonSchemaType);

function message(args: Record<string, unknown>): string {
  const r = validate(args);
  assert.equal(r.valid, false);
  return describeArgumentErrors(r.errorMessage!, args, schema);
}

test('each failed check names its argument', () => {
  assert.equal(message({ city: 'Oslo', days: 15 }), 'argument "days": must be <= 14');
  assert.equal(message({ days: 3 }), 'argument "city": is required');
  assert.equal(message({ city: 'Oslo', days: 'x' }), 'argument "days": must be integer');
  assert.equal(message({ city: 'Oslo', where: { lat: 'n' } }), 'argument "where.lat": must be number');
  assert.equal(message({ city: 'Oslo', tags: [{ k: 'a' }, {}] }), 'argument "tags[1].k": is required');
});

test('arguments that are not allowed are named, at any depth', () => {
  assert.equal(message({ city: 'Oslo', extra: 1 }), 'argument "extra": is not allowed: the tool declares no such argument');
  assert.equal(message({ city: 'Oslo', where: { lat: 1, lon: 2 } }), 'argument "where.lon": is not allowed: the tool declares no such argument');
  assert.equal(message({ city: 'Oslo', tags: [{ k: 'a', v: 1 }] }), 'argument "tags[0].v": is not allowed: the tool declares no such argument');
  assert.deepEqual(new Set(message({ days: 0, a: 1, b: 2 }).split('; ')), new Set([
    'argument "a": is not allowed: the tool declares no such argument',
    'argument "b": is not allowed: the tool declares no such argument',
    'argument "days": must be >= 1',
    'argument "city": is required',
  ]));
});

test('a long report is cut to the bound', () => {
  const args: Record<string, unknown> = { city: 'Oslo' };
  for (let i = 0; i < 100; i++) args[`extra_${i}`] = i;
  const m = message(args);
  assert.ok(m.length <= 500);
  assert.match(m, /^argument "extra_0": is not allowed/);
});
