/**
 * MCP resources, prompts and completion through the gateway, end to end: the official SDK client
 * over real HTTP against the whole Tessera server, upstreams the real `server-everything` (stdio)
 * and a careless resources upstream of our own over Streamable HTTP (fixtures/resources-upstream.ts)
 * with an injected X-Api-Key. Federation of URIs and names, Cedar `resource.read` / `prompt.get`,
 * task scopes `resource:` / `prompt:`, scrubbing, audit, and every refused input's stable code.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startGatewayHarness, rawMcp, INIT, ENV_ECHO_SERVER, type GatewayHarness } from './harness.js';
import { startResourcesUpstream, HOSTILE_URIS, type ResourcesUpstream } from './fixtures/resources-upstream.js';

const API_KEY = 'res-upstream-key-Qw81Zx55Lp';
const READER = 'spiffe://example.org/ns/gw/sa/reader';
const OTHER = 'spiffe://example.org/ns/other/sa/nobody';
const PUB = 'spiffe://example.org/ns/pub/sa/reader';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const ARCH = 'tessera://everything/demo://resource/static/document/architecture.md';

const POLICIES = `
@id("read-everything")
permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"everything")
when { principal.hasTag("team") && principal.getTag("team") == "gw" }
unless { context.uri == "demo://resource/static/document/extension.md" };

// Only the static documents, by URI (the documented pattern: docs/gateway.md "Resources").
@id("read-static-by-uri")
permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"everything")
when { principal.hasTag("team") && principal.getTag("team") == "pub" && context.uri like "demo://resource/static/*" };

@id("read-res")
permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"res")
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("prompts-everything")
permit (principal, action == Tessera::Action::"prompt.get", resource in Tessera::Server::"everything")
when { principal.hasTag("team") && principal.getTag("team") == "gw" }
unless { resource.name == "simple-prompt" };

@id("prompts-res")
permit (principal, action == Tessera::Action::"prompt.get", resource in Tessera::Server::"res")
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("no-atlantis")
forbid (principal, action == Tessera::Action::"prompt.get", resource == Tessera::Prompt::"everything/args-prompt")
when { context.args.city == "Atlantis" };

@id("read-echo")
permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"echo")
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("inject-res")
permit (principal, action == Tessera::Action::"secret.inject", resource == Tessera::Secret::"gw/res/key")
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("delegate") permit (principal, action == Tessera::Action::"token.delegate", resource) when { principal.trust_domain == "example.org" };
`;

let h: GatewayHarness;
let up: ResourcesUpstream;
let token: string;
let client: Client;

before(async () => {
  up = await startResourcesUpstream();
  h = await startGatewayHarness({
    policies: POLICIES,
    secrets: { 'gw/res/key': API_KEY },
    gateway: {
      audit_argument_values: true,
      servers: [
        { name: 'everything', transport: 'stdio', command: process.execPath, args: ['node_modules/@modelcontextprotocol/server-everything/dist/index.js', 'stdio'] },
        { name: 'res', transport: 'streamable_http', url: up.url, headers: { 'X-Api-Key': { secret: 'gw/res/key' } } },
        // Tools only: no resources, prompts or completions capability.
        { name: 'echo', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER] },
      ],
    },
  });
  token = await h.login(READER, { team: 'gw' });
  client = await h.connect(token);
});

after(async () => {
  await h?.close();
  await up?.close();
});

async function rpcError(p: Promise<unknown>): Promise<McpError & { data?: { code?: string; details?: Record<string, unknown> } }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof McpError, `expected McpError, got ${String(e)}`);
    return e as McpError & { data?: { code?: string } };
  }
  assert.fail('expected the request to fail');
}

async function events(kind: string): Promise<any[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events WHERE kind = ? ORDER BY seq', [kind]);
  return rows.map((r) => JSON.parse(r.body));
}

async function taskToken(scope: string, subject = token): Promise<string> {
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: GRANT, subject_token_type: ACCESS, subject_token: subject, scope, purpose: 'resources test' }) });
  const body = (await res.json()) as { access_token: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

/** A request outside the token's scope, raw: HTTP 403, the code, and the WWW-Authenticate challenge it returns. */
async function outOfScope(tok: string, method: string, params: unknown): Promise<string> {
  const init = await rawMcp(h.mcpUrl, tok, INIT());
  const headers = { 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-11-25' };
  const r = await rawMcp(h.mcpUrl, tok, JSON.stringify({ jsonrpc: '2.0', id: 9, method, params }), headers);
  assert.equal(r.status, 403, JSON.stringify(r.body));
  assert.equal(r.body.error.data.code, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
  return r.headers.get('www-authenticate') ?? '';
}

test('initialize advertises resources, prompts and completions only to a caller who may use some', async () => {
  assert.ok(client.getServerCapabilities()?.resources);
  assert.ok(client.getServerCapabilities()?.prompts);
  assert.ok(client.getServerCapabilities()?.completions);
  const other = await h.connect(await h.login(OTHER));
  const caps = other.getServerCapabilities()!;
  assert.ok(caps.tools);
  assert.equal(caps.resources, undefined);
  assert.equal(caps.prompts, undefined);
  assert.equal(caps.completions, undefined);
  for (const p of [other.listResources(), other.listPrompts(), other.readResource({ uri: ARCH }), other.getPrompt({ name: 'res__greet' }), other.complete({ ref: { type: 'ref/prompt', name: 'res__greet' }, argument: { name: 'name', value: '' } })]) {
    const e = await rpcError(p);
    assert.equal(e.code, -32601);
    assert.equal(e.data?.code, 'TESSERA_GATEWAY_METHOD_NOT_FOUND');
  }
});

test('resources/list federates both upstreams under tessera://<server>/<uri>, shows only what policy lets the caller read, and never a hostile URI', async () => {
  const { resources } = await client.listResources();
  const uris = resources.map((r) => r.uri);
  assert.ok(uris.includes(ARCH), JSON.stringify(uris));
  assert.ok(!uris.includes('tessera://everything/demo://resource/static/document/extension.md'), 'a resource policy forbids is not listed');
  assert.ok(uris.includes('tessera://res/docs://public/readme'));
  assert.ok(uris.includes('tessera://res/secret://key'));
  for (const u of uris) assert.match(u, /^tessera:\/\/(everything|res)\//);
  for (const hostile of HOSTILE_URIS) assert.ok(!uris.some((u) => u.endsWith(hostile)), `${hostile} must not be served`);
  const { resourceTemplates } = await client.listResourceTemplates();
  const templates = resourceTemplates.map((t) => t.uriTemplate);
  assert.ok(templates.includes('tessera://everything/demo://resource/dynamic/text/{resourceId}'), JSON.stringify(templates));
  assert.ok(templates.includes('tessera://res/docs://public/page/{id}'));
});

test('resources/read: the upstream content with its URI federated, audited as gateway.resource_read', async () => {
  const r = await client.readResource({ uri: ARCH });
  assert.equal(r.contents[0]!.uri, ARCH);
  assert.match(String((r.contents[0] as { text: string }).text), /Architecture/);
  // A template expanded by the client maps back to the upstream's expansion.
  const t = await client.readResource({ uri: 'tessera://everything/demo://resource/dynamic/text/7' });
  assert.equal(t.contents[0]!.uri, 'tessera://everything/demo://resource/dynamic/text/7');
  const b = await client.readResource({ uri: 'tessera://everything/demo://resource/dynamic/blob/7' });
  assert.ok((b.contents[0] as { blob?: string }).blob, 'a blob is passed as a blob');
  const p = await client.readResource({ uri: 'tessera://res/docs://public/page/10' });
  assert.equal((p.contents[0] as { text: string }).text, 'page 10');
  const ev = (await events('gateway.resource_read')).find((e) => e.details.item === 'demo://resource/static/document/architecture.md');
  assert.ok(ev);
  assert.equal(ev.result, 'allow');
  assert.equal(ev.resource, 'everything/demo://resource/static/document/architecture.md');
  assert.deepEqual(ev.reason.policies, ['read-everything']);
  assert.equal(ev.details.outcome, 'delivered');
  assert.equal(ev.details.upstream_status, 'ok');
});

test('resources/read of a resource policy does not permit: TESSERA_GATEWAY_RESOURCE_DENIED, audited as a refusal', async () => {
  const e = await rpcError(client.readResource({ uri: 'tessera://everything/demo://resource/static/document/extension.md' }));
  assert.equal(e.data?.code, 'TESSERA_GATEWAY_RESOURCE_DENIED');
  assert.equal(e.code, -32003);
  const ev = (await events('gateway.resource_read')).find((x) => x.details.item === 'demo://resource/static/document/extension.md');
  assert.equal(ev.result, 'deny');
  assert.equal(ev.details.upstream_status, 'not_called');
  // An agent no policy lets read anything gets no handler at all (no capability), not an oracle.
});

test('refused resource URIs, each with its stable code and reason, before any upstream is asked', async () => {
  const cases: [string, string, RegExp][] = [
    ['tessera://everything/demo://resource/static/../../etc/passwd', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /traversal/],
    ['tessera://everything/demo://resource/static/%2e%2e/x', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /encoded/],
    ['tessera://everything/demo://resource/static/%2E%2E/x', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /encoded/],
    ['tessera://everything/demo://resource%2fstatic', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /encoded/],
    ['tessera://everything/demo://resource/%252e%252e/x', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /encoded/],
    ['tessera://everything/demo://a\\..\\b', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /backslash/],
    ['tessera://everything/tessera://res/secret://key', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /another server's prefix/],
    ['tessera://everything/TESSERA://res/secret://key', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /another server's prefix/],
    ['demo://resource/static/document/architecture.md', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /unknown scheme/],
    ['file:///etc/passwd', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /unknown scheme/],
    ['tessera://everything/', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /no upstream URI/],
    ['tessera://everything/no-scheme/path', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /no scheme/],
    [`tessera://everything/demo://${'a'.repeat(2100)}`, 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', /longer than 2048/],
    ['tessera://nope/demo://x', 'TESSERA_GATEWAY_RESOURCE_NOT_FOUND', /no such server/],
  ];
  for (const [uri, code, why] of cases) {
    const e = await rpcError(client.readResource({ uri }));
    assert.equal(e.data?.code, code, `${uri.slice(0, 80)}: ${e.message}`);
    assert.match(e.message, why, uri.slice(0, 80));
    assert.ok(!e.message.includes('etc/passwd') && !e.message.includes('aaaa'), 'the URI is not echoed');
  }
  const refused = (await events('gateway.resource_read')).filter((x) => x.reason?.code === 'TESSERA_GATEWAY_RESOURCE_URI_INVALID');
  assert.ok(refused.length >= 12, 'every refusal is audited');
  for (const r of refused) assert.equal(r.details.upstream_status, 'not_called');
});

test('a resource carrying the injected secret is scrubbed (text redacted, blob replaced) and audited as suspected exfiltration', async () => {
  const r = await client.readResource({ uri: 'tessera://res/secret://key' });
  const text = JSON.stringify(r);
  assert.ok(!text.includes(API_KEY), 'the injected key never reaches the agent');
  assert.match(text, /REDACTED/);
  const b = await client.readResource({ uri: 'tessera://res/secret://blob' });
  assert.ok(!JSON.stringify(b).includes(Buffer.from(`key=${API_KEY}`).toString('base64')));
  assert.equal((b.contents[0] as { blob?: string }).blob, undefined, 'the blob is replaced by a notice');
  assert.match(String((b.contents[0] as { text?: string }).text), /REDACTED/);
  assert.equal(b.contents[0]!.uri, 'tessera://res/secret://blob');
  const reads = (await events('gateway.resource_read')).filter((x) => x.details.server === 'res' && x.details.item.startsWith('secret://'));
  assert.ok(reads.every((x) => x.details.outcome === 'redacted'));
  const hits = (await events('gateway.exfiltration_suspected')).filter((x) => x.details.item === 'resource');
  assert.ok(hits.some((x) => x.details.label === 'kv/gw/res/key'));
});

test('a task token\'s resource: scope narrows resources/list and resources/read (TESSERA_TOKEN_INSUFFICIENT_SCOPE)', async () => {
  const task = await taskToken('resource:everything/demo:/resource/static/**');
  const c = await h.connect(task);
  assert.ok(c.getServerCapabilities()?.resources);
  assert.equal(c.getServerCapabilities()?.prompts, undefined, 'no prompt: scope, no prompts');
  const { resources } = await c.listResources();
  assert.ok(resources.length > 0);
  for (const r of resources) assert.ok(r.uri.startsWith('tessera://everything/demo://resource/static/'), r.uri);
  await c.readResource({ uri: ARCH });
  // Outside the scope: HTTP 403 with the scope challenge (MCP authorization §"Scope Challenge Handling"), as for tools/call.
  await assert.rejects(c.readResource({ uri: 'tessera://res/docs://public/readme' }), /TESSERA_TOKEN_INSUFFICIENT_SCOPE/);
  const challenge = await outOfScope(task, 'resources/read', { uri: 'tessera://everything/demo://resource/dynamic/text/1' });
  assert.match(challenge, /error="insufficient_scope", scope="resource:everything\/demo:\/resource\/dynamic\/text\/1"/);
});

test('a resource: scope within a policy that permits by context.uri still gets resources advertised, listed and read', async () => {
  // The scope name drops the URI's empty segments (demo:/…) while the policy's `like` sees the URI (demo://…):
  // initialize must not conclude from either spelling alone that nothing is readable.
  const pub = await h.login(PUB, { team: 'pub' });
  for (const scope of ['resource:everything/demo:/resource/static/**', 'resource:everything/demo:/resource/static/document/*', 'resource:everything/demo:/resource/static/document/architecture.md']) {
    const c = await h.connect(await taskToken(scope, pub));
    assert.ok(c.getServerCapabilities()?.resources, scope);
    const { resources } = await c.listResources();
    assert.ok(resources.some((r) => r.uri === ARCH), scope);
    for (const r of resources) assert.ok(r.uri.startsWith('tessera://everything/demo://resource/static/'), r.uri);
    assert.equal((await c.readResource({ uri: ARCH })).contents[0]!.uri, ARCH);
    await c.close();
  }
  // A scope the policy grants nothing within: still not advertised.
  const none = await h.connect(await taskToken('resource:everything/demo:/resource/dynamic/**', pub));
  assert.equal(none.getServerCapabilities()?.resources, undefined);
  await none.close();
});

test('prompts/list names prompts <server>__<prompt> and shows only what policy permits', async () => {
  const { prompts } = await client.listPrompts();
  const names = prompts.map((p) => p.name);
  for (const n of ['everything__args-prompt', 'everything__completable-prompt', 'everything__resource-prompt', 'res__greet', 'res__leak', 'res__embed']) assert.ok(names.includes(n), `${n} in ${JSON.stringify(names)}`);
  assert.ok(!names.includes('everything__simple-prompt'), 'a prompt policy does not permit is invisible');
  const args = prompts.find((p) => p.name === 'everything__args-prompt')!;
  assert.deepEqual(args.arguments?.map((a) => a.name), ['city', 'state']);
});

test('prompts/get with arguments: permitted, forbidden by argument (TESSERA_GATEWAY_PROMPT_DENIED), invisible (TESSERA_GATEWAY_PROMPT_NOT_FOUND)', async () => {
  const r = await client.getPrompt({ name: 'everything__args-prompt', arguments: { city: 'Paris' } });
  assert.match(JSON.stringify(r.messages), /Paris/);
  const slash = await client.getPrompt({ name: 'res/greet', arguments: { name: 'Ada' } });
  assert.match(JSON.stringify(slash.messages), /Say hello to Ada/);
  const denied = await rpcError(client.getPrompt({ name: 'everything__args-prompt', arguments: { city: 'Atlantis' } }));
  assert.equal(denied.data?.code, 'TESSERA_GATEWAY_PROMPT_DENIED');
  for (const name of ['everything__simple-prompt', 'everything/simple-prompt', 'nosuch__prompt', 'plain']) {
    const e = await rpcError(client.getPrompt({ name }));
    assert.equal(e.data?.code, 'TESSERA_GATEWAY_PROMPT_NOT_FOUND', name);
  }
  // A name policy permits but the upstream does not have: the upstream's own error, passed on (scrubbed).
  const missing = await rpcError(client.getPrompt({ name: 'everything__nope' }));
  assert.equal(missing.data?.code, 'TESSERA_GATEWAY_UPSTREAM_ERROR');
  const ev = (await events('gateway.prompt_get')).filter((x) => x.details.item === 'args-prompt');
  assert.deepEqual(ev.map((x) => x.result), ['allow', 'deny']);
  assert.match(ev[0].details.args_sha256, /^[0-9a-f]{64}$/);
  assert.deepEqual(ev[1].reason.policies, ['no-atlantis']);
});

test('prompt arguments are bounded and may not carry a credential: TESSERA_GATEWAY_PROMPT_ARGS_INVALID naming the argument, never its value', async () => {
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl';
  const cases: Record<string, string>[] = [
    { city: `my token is ${jwt}` },
    { city: 'tsr_admin_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345' },
    { city: 'x'.repeat(8193) },
    Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`a${i}`, 'v'])),
    Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`a${i}`, 'v'.repeat(8000)])),
  ];
  for (const args of cases) {
    const e = await rpcError(client.getPrompt({ name: 'everything__args-prompt', arguments: args }));
    assert.equal(e.data?.code, 'TESSERA_GATEWAY_PROMPT_ARGS_INVALID', e.message);
    assert.ok(!e.message.includes('eyJ') && !e.message.includes('tsr_admin'), 'the value is not echoed');
  }
  const refused = (await events('gateway.prompt_get')).filter((x) => x.reason?.code === 'TESSERA_GATEWAY_PROMPT_ARGS_INVALID');
  assert.ok(refused.length >= cases.length);
  for (const r of refused) assert.equal(r.details.upstream_status, 'not_called');
});

test('prompt arguments of the wrong shape (nested, not strings) are refused at the message check: TESSERA_GATEWAY_PARAMS_INVALID', async () => {
  const init = await rawMcp(h.mcpUrl, token, INIT());
  const sid = init.headers.get('mcp-session-id')!;
  const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  for (const args of [{ city: { nested: { deeper: 'x' } } }, { city: 42 }, ['Paris']]) {
    const r = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'prompts/get', params: { name: 'everything__args-prompt', arguments: args } }), headers);
    assert.equal(r.body.error?.data?.code, 'TESSERA_GATEWAY_PARAMS_INVALID', JSON.stringify(r.body));
  }
  const cursor = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'resources/list', params: { cursor: 'abc' } }), headers);
  assert.equal(cursor.body.error?.data?.code, 'TESSERA_GATEWAY_PARAMS_INVALID');
});

test('a prompt result carrying the injected secret is scrubbed; embedded resource URIs are federated', async () => {
  const r = await client.getPrompt({ name: 'res__leak' });
  assert.ok(!JSON.stringify(r).includes(API_KEY));
  assert.match(JSON.stringify(r), /REDACTED/);
  const ev = (await events('gateway.prompt_get')).filter((x) => x.details.item === 'leak');
  assert.equal(ev.at(-1).details.outcome, 'redacted');
  const embed = await client.getPrompt({ name: 'res__embed' });
  assert.equal((embed.messages[0]!.content as { resource: { uri: string } }).resource.uri, 'tessera://res/docs://public/readme');
  const everything = await client.getPrompt({ name: 'everything__resource-prompt', arguments: { resourceType: 'Text', resourceId: '2' } });
  const uris = JSON.stringify(everything.messages).match(/"uri":"[^"]+"/g) ?? [];
  assert.ok(uris.length > 0);
  for (const u of uris) assert.match(u, /"uri":"tessera:\/\/everything\//);
});

test('a task token\'s prompt: scope narrows prompts/list and prompts/get', async () => {
  const task = await taskToken('prompt:res/greet secret:gw/res/key');
  const c = await h.connect(task);
  assert.deepEqual((await c.listPrompts()).prompts.map((p) => p.name), ['res__greet']);
  await assert.rejects(c.getPrompt({ name: 'res__leak' }), /TESSERA_TOKEN_INSUFFICIENT_SCOPE/);
  assert.match(await outOfScope(task, 'prompts/get', { name: 'res/leak' }), /error="insufficient_scope", scope="prompt:res\/leak"/);
});

test('completion/complete for prompt and resource-template arguments, forwarded to the owning upstream', async () => {
  const p = await client.complete({ ref: { type: 'ref/prompt', name: 'everything__completable-prompt' }, argument: { name: 'department', value: 'E' } });
  assert.deepEqual(p.completion.values, ['Engineering']);
  const g = await client.complete({ ref: { type: 'ref/prompt', name: 'res__greet' }, argument: { name: 'name', value: 'A' } });
  assert.deepEqual(g.completion.values, ['Ada', 'Alan']);
  const t = await client.complete({ ref: { type: 'ref/resource', uri: 'tessera://res/docs://public/page/{id}' }, argument: { name: 'id', value: '1' } });
  assert.deepEqual(t.completion.values, ['1', '10']);
  const ev = (await events('gateway.completion')).filter((x) => x.result === 'allow');
  assert.ok(ev.some((x) => x.details.ref_type === 'prompt' && x.details.item === 'completable-prompt'));
  assert.ok(ev.some((x) => x.details.ref_type === 'resource' && x.details.item === 'docs://public/page/{id}'));
});

test('completion/complete is authorized as what it completes: a prompt or template the caller may not use is refused', async () => {
  const p = await rpcError(client.complete({ ref: { type: 'ref/prompt', name: 'everything__simple-prompt' }, argument: { name: 'x', value: '' } }));
  assert.equal(p.data?.code, 'TESSERA_GATEWAY_PROMPT_NOT_FOUND');
  const r = await rpcError(client.complete({ ref: { type: 'ref/resource', uri: 'tessera://everything/demo://resource/static/document/extension.md' }, argument: { name: 'x', value: '' } }));
  assert.equal(r.data?.code, 'TESSERA_GATEWAY_RESOURCE_DENIED');
  const bad = await rpcError(client.complete({ ref: { type: 'ref/resource', uri: 'tessera://res/docs://public/%2e%2e/{id}' }, argument: { name: 'id', value: '' } }));
  assert.equal(bad.data?.code, 'TESSERA_GATEWAY_RESOURCE_URI_INVALID');
  const cred = await rpcError(client.complete({ ref: { type: 'ref/prompt', name: 'res__greet' }, argument: { name: 'name', value: 'tsr_admin_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345' } }));
  assert.equal(cred.data?.code, 'TESSERA_GATEWAY_PROMPT_ARGS_INVALID');
  const task = await taskToken('prompt:res/greet secret:gw/res/key');
  const c = await h.connect(task);
  const scoped = await rpcError(c.complete({ ref: { type: 'ref/prompt', name: 'everything__completable-prompt' }, argument: { name: 'department', value: 'E' } }));
  assert.equal(scoped.data?.code, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
});

test('an upstream without resources or completions: listings skip it, a read is TESSERA_GATEWAY_RESOURCE_NOT_FOUND, a completion TESSERA_GATEWAY_COMPLETION_UNSUPPORTED', async () => {
  const { resources } = await client.listResources();
  assert.ok(!resources.some((r) => r.uri.startsWith('tessera://echo/')));
  const read = await rpcError(client.readResource({ uri: 'tessera://echo/file:///etc/hostname' }));
  assert.equal(read.data?.code, 'TESSERA_GATEWAY_RESOURCE_NOT_FOUND');
  const c = await rpcError(client.complete({ ref: { type: 'ref/resource', uri: 'tessera://echo/x://y/{id}' }, argument: { name: 'id', value: '1' } }));
  assert.equal(c.data?.code, 'TESSERA_GATEWAY_COMPLETION_UNSUPPORTED');
  const ev = (await events('gateway.completion')).find((x) => x.reason?.code === 'TESSERA_GATEWAY_COMPLETION_UNSUPPORTED');
  assert.equal(ev.details.server, 'echo');
});
