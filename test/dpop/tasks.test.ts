/**
 * DPoP (RFC 9449) and task tokens together, over real HTTP against the whole server
 * (src/main.ts): where the two features meet.
 * - a root task opened with a proof is bound (`cnf.jkt`, `token_type: DPoP`) and works, with
 *   proofs, on an API route and on /mcp (oauth4webapi, with server nonces; the MCP SDK client);
 *   as Bearer, or with another key, it is refused at both;
 * - a bound parent yields only bound children, proven by its key (TESSERA_TASK_BINDING_REQUIRED,
 *   TESSERA_TASK_KEY_MISMATCH); a bound actor token is proven by the sub-agent's key;
 * - Cedar `context.dpop` at token.delegate;
 * - `tokens.dpop.require: delegated` (a task token at depth ≥ 1) and `always` at the exchange
 *   and at every enforcement point, for tokens issued before the setting changed too.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startDpopServer, INIT, MCP_HEADERS, AGENT, type DpopServer, type Res } from './server.js';
import { makeProof, proofKey, thumbprint, type ProofKey } from '../helpers/dpop.js';
import { DpopKey } from '../../src/sdk/dpop.js';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const SUB_AGENT = 'spiffe://tessera.local/ns/dpop/sa/summarizer';
const insecure = { [oauth.allowInsecureRequests]: true } as const;

/** Orchestrators may open and delegate tasks; the "vault-reader" label only from a DPoP-bound delegator. */
const TASK_POLICIES = `
@id("delegate") permit (principal, action == Tessera::Action::"token.delegate", resource) when { principal.trust_domain == "tessera.local" };
@id("vault-reader-needs-bound-delegator") forbid (principal, action == Tessera::Action::"token.delegate", resource is Tessera::SubAgent) when { resource.name == "vault-reader" } unless { context.dpop };
`;
const SCOPE = 'secret:bound/** secret:open/** tool:mem/echo';

const claimsOf = (token: string): any => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
const headerOf = (token: string): any => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'));

async function read(res: Response): Promise<Res> {
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, body, code: body?.error?.data?.code ?? (typeof body?.error === 'object' ? body?.error?.code : undefined) ?? body?.code };
}

/** A proof signer: the test helper's independent one, or the SDK's DpopKey. */
type Signer = (htm: string, htu: string, token?: string) => string;
const signerOf = (k: ProofKey): Signer => (htm, htu, token) => makeProof(k, { htm, htu, ...(token !== undefined ? { token } : {}) });
const sdkSigner = (k: DpopKey): Signer => (htm, htu, token) => k.proof(htm, htu, { nowMs: Date.now(), ...(token !== undefined ? { accessToken: token } : {}) });

/** RFC 8693 task exchange at the real token endpoint; `sign`: a DPoP proof by that key. */
async function taskExchange(srv: DpopServer, params: Record<string, string>, sign?: Signer): Promise<Res> {
  const form = new URLSearchParams({ grant_type: GRANT, subject_token_type: ACCESS, ...params });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (sign) headers.dpop = sign('POST', `${srv.issuer}/v1/oauth/token`);
  const r = await read(await fetch(`${srv.url}/v1/oauth/token`, { method: 'POST', headers, body: form }));
  if (typeof r.body?.access_token === 'string') srv.sensitive.add(r.body.access_token);
  return r;
}

const openRoot = (srv: DpopServer, agentToken: string, sign?: Signer, extra: Record<string, string> = {}) => taskExchange(srv, { subject_token: agentToken, scope: SCOPE, purpose: 'dpop and tasks', ...extra }, sign);

function assertOk(r: Res, tokenType: 'DPoP' | 'Bearer'): string {
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.token_type, tokenType);
  return r.body.access_token as string;
}

function assertRefused(r: Res, status: number, oauthError: string, code: string, field?: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error, oauthError, JSON.stringify(r.body));
  assert.equal(r.code, code, JSON.stringify(r.body));
  if (field !== undefined) assert.equal(r.body.details?.field ?? r.body.field, field, JSON.stringify(r.body));
}

/** GET an API route with `Authorization: DPoP` and a fresh proof. */
async function dpopGet(srv: DpopServer, sign: Signer, token: string, path: string): Promise<Res> {
  return srv.request('GET', path, { authorization: `DPoP ${token}`, dpop: sign('GET', srv.issuer + path, token) });
}

/** The MCP SDK client over /mcp with a fetch that signs each request: tools/list and one tools/call. */
async function mcpEcho(srv: DpopServer, sign: Signer, token: string): Promise<{ tools: string[]; text: unknown; proofs: number }> {
  let proofs = 0;
  const dpopFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    headers.set('authorization', `DPoP ${token}`);
    headers.set('dpop', sign(init?.method ?? 'GET', `${srv.issuer}${url.pathname}`, token));
    proofs++;
    return fetch(input, { ...init, headers });
  };
  const client = new Client({ name: 'dpop-task', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { fetch: dpopFetch }));
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name);
    const r = await client.callTool({ name: 'mem__echo', arguments: { task: true } });
    return { tools, text: (r.content as { text: string }[])[0]?.text, proofs };
  } finally {
    await client.close();
  }
}

/** A raw initialize on /mcp with these headers. */
const mcpInit = (srv: DpopServer, headers: Record<string, string>) => srv.request('POST', '/mcp', { ...headers, ...MCP_HEADERS }, INIT);

let s: DpopServer;
before(async () => {
  s = await startDpopServer({ policies: TASK_POLICIES });
  for (const [path, value] of [['open/a', 'open-value'], ['bound/a', 'bound-value']]) {
    assert.equal((await s.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode: 'read' })).status, 200);
  }
});
after(() => s.close());

test('oauth4webapi (server nonces on): a DPoP-bound root task — login and task exchange with its proofs, used on an API route and on /mcp (MCP SDK over its fetch); as Bearer or with another key it is refused at both', async () => {
  const n = await startDpopServer({ policies: TASK_POLICIES, config: { tokens: { dpop: { nonce: true } } } });
  try {
    assert.equal((await n.admin('PUT', '/v1/admin/secrets/bound/a', { value: 'bound-value', mode: 'read' })).status, 200);
    const issuer = new URL(n.url);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    assert.ok(as.dpop_signing_alg_values_supported?.includes('ES256'));
    assert.ok((as.subject_token_types_supported as string[] | undefined)?.includes(ACCESS), 'RFC 8414 metadata: access_token subjects open and delegate tasks');
    const client: oauth.Client = { client_id: 'tessera-orchestrator' };
    const dpop = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const jkt = await dpop.calculateThumbprint();
    /** RFC 8693 through oauth4webapi, retrying once on use_dpop_nonce (RFC 9449 §8). */
    const grant = async (params: Record<string, string | string[]>): Promise<oauth.TokenEndpointResponse> => {
      const form = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) form.append(k, x);
      const call = async () => oauth.processGenericTokenEndpointResponse(as, client, await oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT, form, { DPoP: dpop, ...insecure }));
      try {
        return await call();
      } catch (e) {
        if (!oauth.isDPoPNonceError(e)) throw e;
        return call();
      }
    };
    const resource = async (method: string, url: URL, headers: Headers, body: BodyInit | null, token: string, signal?: AbortSignal | null): Promise<Response> => {
      const call = () => oauth.protectedResourceRequest(token, method, url, new Headers(headers), body as never, { DPoP: dpop, ...insecure, ...(signal ? { signal } : {}) });
      try {
        return await call();
      } catch (e) {
        if (!oauth.isDPoPNonceError(e)) throw e;
        return call();
      }
    };

    const login = await grant({ subject_token: await n.joinToken(), subject_token_type: 'urn:tessera:token-type:join-token', audience: [n.url, `${n.url}/mcp`] });
    n.sensitive.add(login.access_token);
    assert.equal(login.token_type, 'dpop');
    const root = await grant({ subject_token: login.access_token, subject_token_type: ACCESS, scope: SCOPE, purpose: 'a bound root task' });
    n.sensitive.add(root.access_token);
    assert.equal(root.token_type, 'dpop', 'RFC 9449 §5: a bound task token is token_type DPoP');
    assert.equal(headerOf(root.access_token).typ, 'tessera-task+jwt');
    const c = claimsOf(root.access_token);
    assert.deepEqual(c.cnf, { jkt }, 'bound to the key of the exchange\'s proof');
    assert.equal(c.depth, 0);
    const task = root.access_token;

    // An API route, with oauth4webapi's proofs: the policy for bound/ requires context.dpop.
    const secret = await resource('GET', new URL(`${n.url}/v1/secrets/bound/a`), new Headers(), null, task);
    assert.equal(secret.status, 200);
    assert.equal(((await secret.json()) as { value: string }).value, 'bound-value');

    // /mcp: the official MCP SDK client with oauth4webapi as its fetch (a proof per HTTP request, nonces handled).
    const mcpFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> =>
      resource(init?.method ?? 'GET', new URL(input instanceof Request ? input.url : String(input)), new Headers(init?.headers), (init?.body ?? null) as BodyInit | null, task, init?.signal);
    const mcp = new Client({ name: 'oauth4webapi-task', version: '1' });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${n.url}/mcp`), { fetch: mcpFetch }));
    assert.deepEqual((await mcp.listTools()).tools.map((t) => t.name), ['mem__echo']);
    const r = await mcp.callTool({ name: 'mem__echo', arguments: { bound: 'task' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'echo {"bound":"task"}' }]);
    await mcp.close();

    // The bound task token as Bearer: refused at the API and at /mcp.
    const asBearer = await n.request('GET', '/v1/secrets/bound/a', { authorization: `Bearer ${task}` });
    assert.equal(asBearer.status, 401);
    assert.equal(asBearer.code, 'TESSERA_DPOP_TOKEN_BOUND');
    const mcpBearer = await mcpInit(n, { authorization: `Bearer ${task}` });
    assert.equal(mcpBearer.status, 401);
    assert.equal(mcpBearer.code, 'TESSERA_DPOP_TOKEN_BOUND');
    assert.match(mcpBearer.headers.get('www-authenticate') ?? '', /^DPoP resource_metadata=".*", error="invalid_token"/);
    // With a thief's key (and a valid nonce): refused at both.
    const thief = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    for (const [method, url] of [['GET', `${n.url}/v1/secrets/bound/a`], ['POST', `${n.url}/mcp`]] as const) {
      const call = () => oauth.protectedResourceRequest(task, method, new URL(url), new Headers(method === 'POST' ? MCP_HEADERS : {}), method === 'POST' ? INIT : null, { DPoP: thief, ...insecure });
      const refused = await call().catch((e: unknown) => (oauth.isDPoPNonceError(e) ? call() : Promise.reject(e))).then(
        () => assert.fail(`${url}: accepted a proof by another key`),
        (e: unknown) => e,
      );
      assert.ok(refused instanceof oauth.WWWAuthenticateChallengeError, String(refused));
      const ch = refused.cause.find((x) => x.scheme === 'dpop');
      assert.equal(ch?.parameters.error, 'invalid_dpop_proof', url);
      assert.match(String(ch?.parameters.error_description), /another key/, url);
    }
  } finally {
    await n.close();
  }
});

test('a root task from an unbound agent token with a proof is bound (SDK key); a bound agent token opens a root task only with a proof by its own key', async () => {
  const bearerAgent = await s.bearerToken();
  const sdkKey = DpopKey.generate();
  const root = assertOk(await openRoot(s, bearerAgent, sdkSigner(sdkKey)), 'DPoP');
  assert.deepEqual(claimsOf(root).cnf, { jkt: sdkKey.thumbprint });
  assert.equal((await dpopGet(s, sdkSigner(sdkKey), root, '/v1/secrets/bound/a')).body.value, 'bound-value');
  const m = await mcpEcho(s, sdkSigner(sdkKey), root);
  assert.deepEqual([m.tools, m.text], [['mem__echo'], 'echo {"task":true}']);
  // Without a proof, the same agent token opens a Bearer root task, which policy keeps out of bound/.
  const loose = assertOk(await openRoot(s, bearerAgent), 'Bearer');
  assert.equal(claimsOf(loose).cnf, undefined);
  assert.equal((await s.request('GET', '/v1/secrets/open/a', { authorization: `Bearer ${loose}` })).body.value, 'open-value');
  assert.equal((await s.request('GET', '/v1/secrets/bound/a', { authorization: `Bearer ${loose}` })).code, 'TESSERA_POLICY_DENIED');
  assert.equal((await s.request('GET', '/v1/secrets/open/a', { authorization: `DPoP ${loose}`, dpop: sdkSigner(sdkKey)('GET', `${s.issuer}/v1/secrets/open/a`, loose) })).code, 'TESSERA_DPOP_TOKEN_NOT_BOUND');

  // A bound agent token: its key must be proven to open a task.
  const k = proofKey();
  const boundAgent = await s.boundToken(k);
  assertRefused(await openRoot(s, boundAgent), 400, 'invalid_request', 'TESSERA_TASK_BINDING_REQUIRED', 'subject_token');
  assertRefused(await openRoot(s, boundAgent, signerOf(proofKey())), 400, 'invalid_grant', 'TESSERA_TASK_KEY_MISMATCH', 'subject_token');
  const ok = assertOk(await openRoot(s, boundAgent, signerOf(k)), 'DPoP');
  assert.deepEqual(claimsOf(ok).cnf, { jkt: await thumbprint(k) });
  // A bad proof at a task exchange is refused before the subject token is used (RFC 9449 §5).
  const bad = await taskExchange(s, { subject_token: boundAgent, scope: SCOPE, purpose: 'x' }, (htm) => makeProof(k, { htm, htu: `${s.issuer}/v1/whoami` }));
  assertRefused(bad, 400, 'invalid_dpop_proof', 'TESSERA_DPOP_HTU_MISMATCH');
  // A thumbprint by parameter is refused, on a task exchange and on a login alike.
  assertRefused(await openRoot(s, bearerAgent, undefined, { dpop_jkt: sdkKey.thumbprint }), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID', 'dpop_jkt');
  const login = await read(await fetch(`${s.url}/v1/oauth/token`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: GRANT, subject_token: await s.joinToken(), subject_token_type: 'urn:tessera:token-type:join-token', dpop_jkt: sdkKey.thumbprint }),
  }));
  assertRefused(login, 400, 'invalid_request', 'TESSERA_REQUEST_INVALID', 'dpop_jkt');
});

test('a bound parent: delegating without a proof → TESSERA_TASK_BINDING_REQUIRED, with a proof of another key → TESSERA_TASK_KEY_MISMATCH; with its key → a child bound to it, usable on the API and /mcp with proofs, refused as Bearer', async () => {
  const k = proofKey();
  const agent = await s.boundToken(k);
  const parent = assertOk(await openRoot(s, agent, signerOf(k)), 'DPoP');
  const child = (sign?: Signer) => taskExchange(s, { subject_token: parent, label: 'reader', scope: 'secret:bound/a tool:mem/echo' }, sign);

  assertRefused(await child(), 400, 'invalid_request', 'TESSERA_TASK_BINDING_REQUIRED', 'subject_token');
  assertRefused(await child(signerOf(proofKey())), 400, 'invalid_grant', 'TESSERA_TASK_KEY_MISMATCH', 'subject_token');
  assertRefused(await child(sdkSigner(DpopKey.generate())), 400, 'invalid_grant', 'TESSERA_TASK_KEY_MISMATCH', 'subject_token');
  const r = await child(signerOf(k));
  const token = assertOk(r, 'DPoP');
  const c = claimsOf(token);
  assert.deepEqual([c.depth, c.cnf, c.act.label], [1, { jkt: await thumbprint(k) }, 'reader']);

  assert.equal((await dpopGet(s, signerOf(k), token, '/v1/secrets/bound/a')).body.value, 'bound-value');
  assert.equal((await dpopGet(s, signerOf(k), token, '/v1/secrets/open/a')).code, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE', 'the child\'s scope still narrows');
  const m = await mcpEcho(s, signerOf(k), token);
  assert.deepEqual([m.tools, m.text], [['mem__echo'], 'echo {"task":true}']);
  assert.ok(m.proofs >= 4);
  for (const [name, res] of [
    ['API as Bearer', await s.request('GET', '/v1/secrets/bound/a', { authorization: `Bearer ${token}` })],
    ['/mcp as Bearer', await mcpInit(s, { authorization: `Bearer ${token}` })],
    ['API with another key', await dpopGet(s, signerOf(proofKey()), token, '/v1/secrets/bound/a')],
  ] as const) {
    assert.equal(res.status, 401, name);
    assert.equal(res.code, name.includes('another') ? 'TESSERA_DPOP_KEY_MISMATCH' : 'TESSERA_DPOP_TOKEN_BOUND', name);
  }

  // Audited with the thumbprint (a public-key digest), shown as bound in the task tree.
  await s.tessera.audit.flush();
  const events = (await s.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind IN ('task.created', 'task.refused') ORDER BY seq")).map((e) => JSON.parse(e.body));
  const created = events.find((e) => e.kind === 'task.created' && e.txn === r.body.txn);
  assert.deepEqual([created?.details.bound, created?.details.dpop_jkt], [true, await thumbprint(k)]);
  assert.ok(events.some((e) => e.kind === 'task.refused' && e.details.code === 'TESSERA_TASK_KEY_MISMATCH' && e.txn === claimsOf(parent).txn), 'the refused attempt is in the parent\'s task');
  const tree = await s.admin('GET', `/v1/admin/tasks/${claimsOf(parent).txn}`);
  assert.equal(tree.status, 200, JSON.stringify(tree.body));
  assert.ok(JSON.stringify(tree.body).includes('"bound":true'));
});

test('a bound actor token: the exchange\'s proof must be by the sub-agent\'s key, and binds the child to it; a bound parent and a sub-agent bound to another key cannot meet in one request', async () => {
  const orchKey = proofKey();
  const subKey = DpopKey.generate();
  const orchBearer = await s.bearerToken();
  const subLogin = await s.exchange(await s.joinToken(SUB_AGENT), { dpop: sdkSigner(subKey)('POST', `${s.issuer}/v1/oauth/token`) });
  const subAgent = assertOk(subLogin, 'DPoP');
  const unboundParent = assertOk(await openRoot(s, orchBearer), 'Bearer');
  const delegate = (parent: string, sign?: Signer) => taskExchange(s, { subject_token: parent, actor_token: subAgent, actor_token_type: ACCESS, scope: 'secret:bound/a' }, sign);

  assertRefused(await delegate(unboundParent), 400, 'invalid_request', 'TESSERA_TASK_BINDING_REQUIRED', 'actor_token');
  assertRefused(await delegate(unboundParent, signerOf(orchKey)), 400, 'invalid_grant', 'TESSERA_TASK_KEY_MISMATCH', 'actor_token');
  // The sub-agent's key signs the proof: the child is bound to the sub-agent's own key, acts as it.
  const child = assertOk(await delegate(unboundParent, sdkSigner(subKey)), 'DPoP');
  const c = claimsOf(child);
  assert.deepEqual([c.cnf, c.act.sub, c.depth], [{ jkt: subKey.thumbprint }, SUB_AGENT, 1]);
  const who = await dpopGet(s, sdkSigner(subKey), child, '/v1/whoami');
  assert.equal(who.body.spiffe_id, SUB_AGENT);
  assert.equal((await dpopGet(s, sdkSigner(subKey), child, '/v1/secrets/bound/a')).body.value, 'bound-value');

  // A parent bound to the orchestrator's key and a sub-agent bound to its own: one proof cannot prove both.
  const boundParent = assertOk(await openRoot(s, orchBearer, signerOf(orchKey)), 'DPoP');
  assertRefused(await delegate(boundParent, signerOf(orchKey)), 400, 'invalid_grant', 'TESSERA_TASK_KEY_MISMATCH', 'actor_token');
  assertRefused(await delegate(boundParent, sdkSigner(subKey)), 400, 'invalid_grant', 'TESSERA_TASK_KEY_MISMATCH', 'subject_token');
  // An unbound sub-agent login under the bound parent: the child is bound to the parent's key.
  const subBearer = await s.bearerToken(SUB_AGENT);
  const sameKey = assertOk(await taskExchange(s, { subject_token: boundParent, actor_token: subBearer, actor_token_type: ACCESS, scope: 'secret:bound/a' }, signerOf(orchKey)), 'DPoP');
  assert.deepEqual(claimsOf(sameKey).cnf, { jkt: await thumbprint(orchKey) });
});

test('Cedar context.dpop at token.delegate: the delegating token is bound and proven (a policy keeps a label to bound delegators)', async () => {
  const k = proofKey();
  const unbound = assertOk(await openRoot(s, await s.bearerToken()), 'Bearer');
  // The new child would be bound (a proof was sent), but the delegator's own token is not: context.dpop is false.
  assertRefused(await taskExchange(s, { subject_token: unbound, label: 'vault-reader', scope: 'secret:bound/a' }, signerOf(k)), 400, 'invalid_request', 'TESSERA_TASK_DELEGATION_DENIED');
  assertOk(await taskExchange(s, { subject_token: unbound, label: 'other-reader', scope: 'secret:bound/a' }, signerOf(k)), 'DPoP');
  const bound = assertOk(await openRoot(s, await s.bearerToken(), signerOf(k)), 'DPoP');
  assertOk(await taskExchange(s, { subject_token: bound, label: 'vault-reader', scope: 'secret:bound/a' }, signerOf(k)), 'DPoP');
});

test('tokens.dpop.require: delegated — a delegation needs a proof, root tasks and agent tokens stay free; an unbound child (issued before the change) is refused as Bearer on the API and /mcp; then always: every task exchange and every unbound token', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-dpop-tasks-require-'));
  const first = await startDpopServer({ dataDir, policies: TASK_POLICIES });
  const oldAgent = await first.bearerToken();
  const oldRoot = assertOk(await openRoot(first, oldAgent), 'Bearer');
  const oldChild = assertOk(await taskExchange(first, { subject_token: oldRoot, label: 'loose', scope: 'secret:open/a tool:mem/echo' }), 'Bearer');
  assert.equal(claimsOf(oldChild).depth, 1);
  const port = new URL(first.url).port;
  for (const t of [oldAgent, oldRoot, oldChild]) first.sensitive.add(t);
  await first.close();

  const n = await startDpopServer({ dataDir, policies: TASK_POLICIES, config: { server: { listen: `127.0.0.1:${port}` }, tokens: { dpop: { require: 'delegated' } } } });
  try {
    for (const t of [oldAgent, oldRoot, oldChild]) n.sensitive.add(t);
    assert.equal((await n.admin('PUT', '/v1/admin/secrets/open/a', { value: 'open-value', mode: 'read' })).status, 200);
    // An unbound child at depth 1, as Bearer: refused everywhere.
    const api = await n.request('GET', '/v1/secrets/open/a', { authorization: `Bearer ${oldChild}` });
    assert.equal(api.status, 401);
    assert.equal(api.code, 'TESSERA_DPOP_REQUIRED');
    assert.match(api.headers.get('www-authenticate') ?? '', /^DPoP .*error="invalid_token"/);
    const mcp = await mcpInit(n, { authorization: `Bearer ${oldChild}` });
    assert.equal(mcp.code, 'TESSERA_DPOP_REQUIRED');
    // Agent tokens and root tasks (depth 0) are not delegated: still accepted unbound.
    assert.equal((await n.request('GET', '/v1/secrets/open/a', { authorization: `Bearer ${oldRoot}` })).body.value, 'open-value');
    assert.equal((await n.request('GET', '/v1/whoami', { authorization: `Bearer ${oldAgent}` })).body.spiffe_id, AGENT);
    assert.equal((await mcpInit(n, { authorization: `Bearer ${oldRoot}` })).status, 200);
    assertOk(await openRoot(n, oldAgent), 'Bearer');
    // A delegation without a proof is refused at the exchange; with one, the child is bound and works.
    assertRefused(await taskExchange(n, { subject_token: oldRoot, label: 'loose', scope: 'secret:open/a' }), 400, 'invalid_dpop_proof', 'TESSERA_DPOP_PROOF_MISSING');
    // The unbound child cannot be laundered into a bound grandchild by a proof at the exchange.
    const laundered = await taskExchange(n, { subject_token: oldChild, label: 'deeper', scope: 'secret:open/a' }, signerOf(proofKey()));
    assertRefused(laundered, 400, 'invalid_grant', 'TESSERA_OAUTH_INVALID_GRANT', 'subject_token');
    assert.equal(laundered.body.details?.cause, 'TESSERA_DPOP_REQUIRED');
    const subBearer = await n.bearerToken(SUB_AGENT);
    assertRefused(await taskExchange(n, { subject_token: oldRoot, actor_token: subBearer, actor_token_type: ACCESS, scope: 'secret:open/a' }), 400, 'invalid_dpop_proof', 'TESSERA_DPOP_PROOF_MISSING');
    const k = proofKey();
    const child = assertOk(await taskExchange(n, { subject_token: oldRoot, label: 'keyed', scope: 'secret:open/a tool:mem/echo' }, signerOf(k)), 'DPoP');
    assert.equal((await dpopGet(n, signerOf(k), child, '/v1/secrets/open/a')).body.value, 'open-value');
    assert.equal((await mcpEcho(n, signerOf(k), child)).text, 'echo {"task":true}');
    assert.equal((await n.request('GET', '/v1/secrets/open/a', { authorization: `Bearer ${child}` })).code, 'TESSERA_DPOP_TOKEN_BOUND');
  } finally {
    await n.close();
  }

  const a = await startDpopServer({ dataDir, policies: TASK_POLICIES, config: { server: { listen: `127.0.0.1:${port}` }, tokens: { dpop: { require: 'always' } } } });
  try {
    for (const t of [oldAgent, oldRoot, oldChild]) a.sensitive.add(t);
    assert.equal((await a.request('GET', '/v1/whoami', { authorization: `Bearer ${oldRoot}` })).code, 'TESSERA_DPOP_REQUIRED', 'a root task too');
    const k = proofKey();
    const agent = await a.boundToken(k);
    assertRefused(await openRoot(a, agent), 400, 'invalid_dpop_proof', 'TESSERA_DPOP_PROOF_MISSING');
    // An unbound agent token can no longer be presented anywhere: not to open a task, with a proof or without.
    for (const sign of [undefined, signerOf(proofKey())]) {
      const r = await openRoot(a, oldAgent, sign);
      assertRefused(r, 400, 'invalid_grant', 'TESSERA_OAUTH_INVALID_GRANT', 'subject_token');
      assert.equal(r.body.details?.cause, 'TESSERA_DPOP_REQUIRED');
    }
    // Nor as an actor token (a sub-agent's unbound identity).
    const boundRoot = assertOk(await openRoot(a, agent, signerOf(k)), 'DPoP');
    const actor = await taskExchange(a, { subject_token: boundRoot, actor_token: oldAgent, actor_token_type: ACCESS, scope: 'secret:open/a' }, signerOf(k));
    assertRefused(actor, 400, 'invalid_request', 'TESSERA_TASK_ACTOR_TOKEN_INVALID', 'actor_token');
    assert.equal(actor.body.details?.cause, 'TESSERA_DPOP_REQUIRED');
    const root = assertOk(await openRoot(a, agent, signerOf(k)), 'DPoP');
    assert.equal((await dpopGet(a, signerOf(k), root, '/v1/whoami')).body.spiffe_id, AGENT);
  } finally {
    await a.close();
  }
});
