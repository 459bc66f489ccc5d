/**
 * Attack (issue 9): a resource `forbid` (or `unless`) written on the upstream URI, as
 * docs/gateway.md's examples do, is bypassed by an equivalent spelling of the same URI that the
 * gateway passes through unchanged: a percent-encoded ordinary character (`%65` for `e`), an
 * upper-case scheme, `localhost` or an extra `/` in a file URI. Cedar sees one string, the
 * upstream decodes it to the forbidden resource.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = mkdtempSync(join(tmpdir(), 'atk9-'));
mkdirSync(join(ROOT, 'public', '.private'), { recursive: true });
writeFileSync(join(ROOT, 'public', 'readme.txt'), 'public readme');
writeFileSync(join(ROOT, 'public', '.private', 'key.txt'), 'PRIVATE-CONTENT');

// docs/gateway.md "Policy examples": public files, minus any .private directory.
const POLICIES = `
@id("public-files")
permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"files")
when { context.uri like "file://${ROOT}/public/*" };

@id("no-private")
forbid (principal, action == Tessera::Action::"resource.read", resource)
when { context.uri like "*/.private/*" };

@id("read-everything")
permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"everything")
unless { context.uri == "demo://resource/static/document/extension.md" };
`;

let h: GatewayHarness;
let client: Client;

before(async () => {
  h = await startGatewayHarness({
    policies: POLICIES,
    gateway: {
      servers: [
        { name: 'files', transport: 'stdio', command: process.execPath, args: [join(HERE, 'fixtures', 'file-resources-server.mjs')], env: { FILE_ROOT: ROOT } },
        { name: 'everything', transport: 'stdio', command: process.execPath, args: ['node_modules/@modelcontextprotocol/server-everything/dist/index.js', 'stdio'] },
      ],
    },
  });
  client = await h.connect(await h.login('spiffe://example.org/ns/atk/sa/low'));
});

after(async () => {
  await h?.close();
});

async function outcome(uri: string): Promise<string> {
  try {
    const r = await client.readResource({ uri });
    return `READ:${String((r.contents[0] as { text?: string }).text).slice(0, 40)}`;
  } catch (e) {
    return `ERR:${(e as { data?: { code?: string } }).data?.code ?? (e as Error).message}`;
  }
}

test('control: the public file reads, the .private one is forbidden', async () => {
  assert.match(await outcome(`tessera://files/file://${ROOT}/public/readme.txt`), /^READ:public readme/);
  assert.equal(await outcome(`tessera://files/file://${ROOT}/public/.private/key.txt`), 'ERR:TESSERA_GATEWAY_RESOURCE_DENIED');
  assert.equal(await outcome('tessera://everything/demo://resource/static/document/extension.md'), 'ERR:TESSERA_GATEWAY_RESOURCE_DENIED');
});

const VARIANTS: [string, string][] = [
  ['percent-encoded ordinary character', `tessera://files/file://${ROOT}/public/.privat%65/key.txt`],
  ['percent-encoded first character after the dot', `tessera://files/file://${ROOT}/public/.%70rivate/key.txt`],
  ['upper-case scheme (everything, exact-URI unless)', 'tessera://everything/DEMO://resource/static/document/extension.md'],
  ['upper-case scheme (file)', `tessera://files/FILE://${ROOT}/public/readme.txt`],
  ['percent-encoded letter in the everything URI', 'tessera://everything/demo://resource/static/document/extension.m%64'],
  ['file://localhost', `tessera://files/file://localhost${ROOT}/public/readme.txt`],
  ['empty path segment', `tessera://files/file:///${ROOT}/public/readme.txt`],
];

for (const [what, uri] of VARIANTS) {
  test(`an equivalent spelling never reads what policy forbids: ${what}`, async () => {
    const got = await outcome(uri);
    assert.equal(got, 'ERR:TESSERA_GATEWAY_RESOURCE_URI_INVALID', `${uri} -> ${got}`);
  });
}
