/**
 * Identity hardening (issue 7) end to end through the whole server (src/main.ts), real HTTP,
 * the shipped example policies and the real CLI code:
 *  - attributes come only from what an attestor proved (the GitLab `ns/<x>/sa/<y>` attack);
 *  - every identity issued or accepted is in a served trust domain (join tokens, revocations,
 *    spiffe federation, and Tessera's own tokens after a federated domain is removed);
 *  - refused requests keep their claimed identity in the audit log; revoking an unknown agent
 *    says so; a revoked agent's login does not burn its join token.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWTPayload } from 'jose';
import { startHarness, type Harness } from './harness.js';
import { makeKey, sign, type TestKey } from '../identity/keys.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';

const TD = 'tessera.local';
const PARTNER_TD = 'partner.example';
const READER = `spiffe://${TD}/ns/healthcare/sa/patient-reader`;
const K8S_ISS = 'https://kubernetes.default.svc';
const CI_ISS = 'https://gitlab.example.com';
const SECRET_PATH = 'healthcare/prod/agents/patient-reader/db-url';

let k8sKey: TestKey;
let ciKey: TestKey;
let spireKey: TestKey;
let keyDir: string;

before(async () => {
  k8sKey = await makeKey('RS256', 'cluster-1');
  ciKey = await makeKey('ES256', 'gitlab-1');
  spireKey = await makeKey('ES256', 'partner-1');
  keyDir = mkdtempSync(join(tmpdir(), 'tessera-identity-e2e-'));
  writeFileSync(join(keyDir, 'k8s.json'), JSON.stringify({ keys: [k8sKey.publicJwk] }));
  writeFileSync(join(keyDir, 'gitlab.json'), JSON.stringify({ keys: [ciKey.publicJwk] }));
  writeFileSync(join(keyDir, 'partner.json'), JSON.stringify({ keys: [{ ...spireKey.publicJwk, alg: undefined, use: 'jwt-svid' }] }));
});

const ATTESTORS = () => [
  { kind: 'join_token', name: 'join_token' },
  { kind: 'jwt', name: 'k8s-prod', issuer: K8S_ISS, audience: 'tessera', jwks_file: join(keyDir, 'k8s.json'), template: 'kubernetes', algorithms: ['RS256'] },
  // The GitLab example of docs/attestors.md, as documented.
  { kind: 'jwt', name: 'gitlab', issuer: CI_ISS, audience: 'tessera', jwks_file: join(keyDir, 'gitlab.json'), template: 'spiffe://{trust_domain}/ci/{claims.project_path|path}/{claims.ref}', algorithms: ['ES256'], label_claims: ['namespace_path'] },
];
const PARTNER = { kind: 'spiffe', name: 'partner', trust_domain: PARTNER_TD, audience: 'tessera', bundle_file: '' };

const nowS = () => Math.floor(Date.now() / 1000);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function loginJwt(h: Harness, subjectToken: string, resource?: string): Promise<{ status: number; body: any }> {
  h.sensitive.add(subjectToken);
  const form = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    ...(resource ? { resource } : {}),
  });
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  const body = (await res.json()) as any;
  if (res.status === 200) h.sensitive.add(body.access_token);
  return { status: res.status, body };
}

async function loginJoin(h: Harness, joinToken: string): Promise<{ status: number; body: any }> {
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: joinToken, subject_token_type: 'urn:tessera:token-type:join-token' });
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  const body = (await res.json()) as any;
  if (res.status === 200) h.sensitive.add(body.access_token);
  return { status: res.status, body };
}

async function cli(h: Harness, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const reject = (): Promise<never> => Promise.reject(new Error('not used'));
  const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s), isTTY: false }, stderr: { write: (s: string) => (stderr += s) }, env: { TESSERA_ADDR: h.url, TESSERA_TOKEN: h.adminToken } };
  return { code: await runCli(argv, runtime, io), stdout, stderr };
}

/** Audit events through the admin API (what `tessera audit tail` reads). */
async function auditEvents(h: Harness, query: string): Promise<any[]> {
  await h.tessera.audit.flush();
  const r = await h.admin('GET', `/v1/admin/audit?limit=1000&${query}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.events as { event: any }[]).map((e) => e.event);
}

const ciToken = (project: string, over: JWTPayload = {}) =>
  sign(ciKey, { iss: CI_ISS, aud: 'tessera', iat: nowS(), exp: nowS() + 300, project_path: project, ref: 'main', namespace_path: project.split('/')[0], ...over });
const k8sToken = (ns: string, sa: string) =>
  sign(k8sKey, { iss: K8S_ISS, aud: 'tessera', iat: nowS(), exp: nowS() + 600, sub: `system:serviceaccount:${ns}:${sa}`, 'kubernetes.io': { namespace: ns, serviceaccount: { name: sa, uid: 'u' } } });

test('a GitLab job whose project path spells ns/healthcare/sa/patient-reader reads nothing under the example policies', async (t) => {
  const h = await startHarness({ config: { attestors: ATTESTORS() } });
  t.after(() => h.close());
  const value = `pg-${Math.random().toString(36).slice(2)}`;
  h.sensitive.add(value);
  assert.equal((await h.admin('PUT', `/v1/admin/secrets/${SECRET_PATH}`, { value, mode: 'read' })).status, 200);

  // The reported attack: it attests (the job token is genuine) but proves no namespace.
  const evil = await loginJwt(h, await ciToken('evilgroup/ns/healthcare/sa/patient-reader'));
  assert.equal(evil.status, 200, JSON.stringify(evil.body));
  const who = await h.agent(evil.body.access_token, 'GET', '/v1/whoami');
  assert.equal(who.body.spiffe_id, `spiffe://${TD}/ci/evilgroup/ns/healthcare/sa/patient-reader/main`);
  assert.deepEqual([who.body.attestor, who.body.attestor_kind, who.body.attributes.namespace, who.body.attributes.service_account], ['gitlab', 'jwt', undefined, undefined]);
  const refused = await h.agent(evil.body.access_token, 'GET', `/v1/secrets/${SECRET_PATH}`);
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, 'TESSERA_POLICY_DENIED');
  // Nor do its look-alikes.
  for (const project of ['ns/healthcare/sa/patient-reader', 'healthcare/patient-reader', 'ns-healthcare/sa-patient-reader']) {
    const l = await loginJwt(h, await ciToken(project));
    assert.equal(l.status, 200, project);
    assert.equal((await h.agent(l.body.access_token, 'GET', `/v1/secrets/${SECRET_PATH}`)).body.error?.code, 'TESSERA_POLICY_DENIED', project);
  }
  // Hostile claim values never form an ID at all.
  for (const [project, ref] of [['group/../ns/healthcare', 'main'], ['group/app', '../../ns/healthcare'], ['group/app', 'a%2Fb'], ['group/app', 'ma\u0456n']]) {
    const l = await loginJwt(h, await ciToken(project!, { ref }));
    assert.equal(l.status, 400, `${project} ${ref}`);
    assert.equal(l.body.error, 'invalid_grant');
  }

  // The real workload, proven by the cluster's token, reads it; so does the dev join token
  // issued for exactly its ID (healthcare-reader-join-token).
  const k8s = await loginJwt(h, await k8sToken('healthcare', 'patient-reader'));
  assert.equal(k8s.status, 200, JSON.stringify(k8s.body));
  const k8sWho = await h.agent(k8s.body.access_token, 'GET', '/v1/whoami');
  assert.deepEqual([k8sWho.body.attestor, k8sWho.body.attestor_kind, k8sWho.body.attributes.namespace], ['k8s-prod', 'kubernetes', 'healthcare']);
  assert.equal((await h.agent(k8s.body.access_token, 'GET', `/v1/secrets/${SECRET_PATH}`)).body.value, value);
  const dev = await h.login(await h.joinToken(READER));
  assert.equal((await h.agent(dev, 'GET', `/v1/secrets/${SECRET_PATH}`)).body.value, value);
  // A join token for a look-alike ID in the namespace gets nothing namespace-wide.
  const lookalike = await h.login(await h.joinToken(`spiffe://${TD}/ns/healthcare/sa/patient-reader-2`));
  assert.equal((await h.agent(lookalike, 'GET', `/v1/secrets/${SECRET_PATH}`)).status, 403);

  // Revoked: the Kubernetes workload's next login is refused and attributed (unverified) to it.
  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: READER, ttl: '1m' })).status, 201);
  const again = await loginJwt(h, await k8sToken('healthcare', 'patient-reader'));
  assert.equal(again.status, 400);
  assert.equal(again.body.code, 'TESSERA_AGENT_REVOKED');
  const failed = (await auditEvents(h, `actor=${encodeURIComponent(READER)}&kind=auth.login`)).filter((e) => e.result === 'failure');
  assert.equal(failed.length, 1);
  assert.deepEqual(failed[0].actor, { id: READER, verified: false });
});

test('join tokens, revocations and tokens only for served trust domains (API and CLI)', async (t) => {
  const partner = { ...PARTNER, bundle_file: join(keyDir, 'partner.json') };
  // A fixed port: the restart below keeps the same issuer (iss), as a real deployment does.
  const server = { listen: `127.0.0.1:${await freePort()}` };
  const h = await startHarness({ config: { server, attestors: [...ATTESTORS(), partner] } });
  const dataDir = h.dataDir;
  let closed = false;
  t.after(async () => {
    if (!closed) await h.close();
  });

  // Join tokens: Tessera's own trust domain only — not another, a look-alike or a federated one.
  for (const id of ['spiffe://other.test/ns/healthcare/sa/patient-reader', `spiffe://${TD}.evil.example/x`, `spiffe://x${TD}/x`, `spiffe://${PARTNER_TD}/w/planner`]) {
    const r = await h.admin('POST', '/v1/admin/join-tokens', { spiffe_id: id });
    assert.equal(r.status, 400, id);
    assert.equal(r.body.error.code, 'TESSERA_TRUST_DOMAIN_UNKNOWN', id);
  }
  const viaCli = await cli(h, ['join-token', 'create', '--spiffe-id', 'spiffe://other.test/agent']);
  assert.equal(viaCli.code, 1);
  assert.match(viaCli.stderr, /TESSERA_TRUST_DOMAIN_UNKNOWN/);
  // Only the dev-mode demo token exists: nothing was created for a foreign domain.
  assert.deepEqual((await h.admin('GET', '/v1/admin/join-tokens')).body.join_tokens.map((j: { spiffe_id: string }) => j.spiffe_id), [READER]);

  // Revocations naming an agent: a served domain (own or federated) or refused.
  const foreign = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: 'spiffe://other.test/ns/x/sa/y' });
  assert.equal(foreign.status, 400);
  assert.equal(foreign.body.error.code, 'TESSERA_TRUST_DOMAIN_UNKNOWN');
  const foreignCli = await cli(h, ['revoke', 'agent', `spiffe://${TD}.evil/ns/x/sa/y`]);
  assert.equal(foreignCli.code, 1);
  assert.match(foreignCli.stderr, /TESSERA_TRUST_DOMAIN_UNKNOWN/);
  assert.equal((await h.admin('GET', '/v1/admin/revocations')).body.revocations.length, 0);

  // Federation: an SVID of the configured partner domain keeps its ID; another domain's is refused.
  const svid = (sub: string) => sign(spireKey, { sub, aud: 'tessera', iat: nowS(), exp: nowS() + 300 });
  const fed = await loginJwt(h, await svid(`spiffe://${PARTNER_TD}/w/planner`));
  assert.equal(fed.status, 200, JSON.stringify(fed.body));
  const fedWho = await h.agent(fed.body.access_token, 'GET', '/v1/whoami');
  assert.deepEqual([fedWho.body.trust_domain, fedWho.body.attestor, fedWho.body.attestor_kind], [PARTNER_TD, 'partner', 'spiffe']);
  for (const sub of [`spiffe://${TD}/ns/healthcare/sa/patient-reader`, `spiffe://${PARTNER_TD}.evil/w/planner`, 'spiffe://other.test/w/planner']) {
    const r = await loginJwt(h, await svid(sub));
    assert.equal(r.status, 400, sub);
    assert.equal(r.body.error, 'invalid_grant', sub);
  }
  const fedRevoke = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: `spiffe://${PARTNER_TD}/w/other`, ttl: '1m' });
  assert.equal(fedRevoke.status, 201, JSON.stringify(fedRevoke.body));

  // The operator ends the federation: tokens Tessera signed for that domain stop working at once.
  await h.close();
  closed = true;
  const again = await startHarness({ dataDir, config: { server, attestors: ATTESTORS() } });
  t.after(() => again.close());
  const stale = await again.agent(fed.body.access_token, 'GET', '/v1/whoami');
  assert.equal(stale.status, 401);
  assert.equal(stale.body.error.code, 'TESSERA_TOKEN_TRUST_DOMAIN_UNKNOWN');
  const gone = await again.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: `spiffe://${PARTNER_TD}/w/planner` });
  assert.equal(gone.body.error.code, 'TESSERA_TRUST_DOMAIN_UNKNOWN');
});

test('refused requests keep their claimed identity: audit tail --actor finds a revoked agent retrying', async (t) => {
  const h = await startHarness({});
  t.after(() => h.close());
  const token = await h.login(await h.joinToken(READER));
  const mcpToken = await h.login(await h.joinToken(READER), `${h.url}/mcp`);
  assert.equal((await h.agent(token, 'GET', '/v1/whoami')).status, 200);

  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: READER, reason: 'incident' });
  assert.equal(rev.status, 201);
  assert.equal(rev.body.known, true, 'the agent has logged in');
  assert.equal(rev.body.warning, undefined);

  // The revoked agent retries: the API, and the MCP gateway.
  for (let i = 0; i < 2; i++) {
    const r = await h.agent(token, 'GET', '/v1/whoami');
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'TESSERA_TOKEN_REVOKED');
  }
  const mcp = await fetch(`${h.url}/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${mcpToken}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
  });
  assert.equal(mcp.status, 401);

  // Refusals are aggregated per source, actor, resource and code per minute (ADR 0142): the API
  // retries are one event (the next one after the window counts the rest), the gateway's another.
  const mine = await auditEvents(h, `actor=${encodeURIComponent(READER)}&kind=auth.token_refused`);
  assert.equal(mine.length, 2, JSON.stringify(mine));
  for (const e of mine) {
    assert.deepEqual(e.actor, { id: READER, verified: false });
    assert.equal(e.reason.code, 'TESSERA_TOKEN_REVOKED');
    assert.equal(e.details.claimed_sub, undefined);
    assert.equal(e.details.window_s, 60);
  }
  assert.deepEqual(mine.map((e) => e.resource ?? null), [null, 'mcp']);

  // The CLI shows them too, marked unverified.
  const tail = await cli(h, ['audit', 'tail', '--actor', READER, '--kind', 'auth.token_refused']);
  assert.equal(tail.code, 0, tail.stderr);
  assert.equal(tail.stdout.match(/\(unverified\)/g)?.length, 2, tail.stdout);

  // A forged token naming the agent (signature does not verify): NOT attributed to it; the claim
  // is kept as unverified text. An attacker cannot write events under an agent's name.
  const [hdr, payload] = token.split('.');
  const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), sub: READER })).toString('base64url');
  const forged = `${hdr}.${forgedPayload}.${'A'.repeat(86)}`;
  h.sensitive.add(forged);
  assert.equal((await h.agent(forged, 'GET', '/v1/whoami')).body.error.code, 'TESSERA_TOKEN_SIGNATURE_INVALID');
  assert.equal((await auditEvents(h, `actor=${encodeURIComponent(READER)}&kind=auth.token_refused`)).length, 2);
  const anon = await auditEvents(h, 'actor=unauthenticated&kind=auth.token_refused');
  const claimed = anon.filter((e) => e.details.claimed_sub === READER);
  assert.equal(claimed.length, 1);
  assert.equal(claimed[0].reason.code, 'TESSERA_TOKEN_SIGNATURE_INVALID');
  // A forged sub that looks like a JWT would make the event invalid: it is recorded without it.
  const jwtLike = `spiffe://${TD}/eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig`;
  // (Another key id, so another refusal code: the event is not folded into the one above, which
  // has the same source, actor and code within the minute — ADR 0142.)
  const hdr2 = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(hdr!, 'base64url').toString()), kid: 'no-such-key' })).toString('base64url');
  const forged2 = `${hdr2}.${Buffer.from(JSON.stringify({ sub: jwtLike })).toString('base64url')}.${'B'.repeat(86)}`;
  h.sensitive.add(forged2);
  const before2 = (await auditEvents(h, 'actor=unauthenticated&kind=auth.token_refused')).length;
  assert.equal((await h.agent(forged2, 'GET', '/v1/whoami')).status, 401);
  const after2 = await auditEvents(h, 'actor=unauthenticated&kind=auth.token_refused');
  assert.equal(after2.length, before2 + 1, 'the refusal is still audited');
  assert.equal(after2[after2.length - 1].details.claimed_sub, undefined);
  // Garbage that names nothing stays plain unauthenticated.
  assert.equal((await h.agent('not-a-token', 'GET', '/v1/whoami')).status, 401);

  // Verification is a background job; `wait` answers once it has finished (docs/audit.md).
  const verify = await h.admin('POST', '/v1/admin/audit/verify', { full: true, wait: true });
  assert.equal(verify.body.job.state, 'done', JSON.stringify(verify.body));
  assert.equal(verify.body.job.result.ok, true, JSON.stringify(verify.body.job.result));
});

test('a revoked agent\'s join-token login is refused without consuming the token; lifting the revocation lets the same token in', async (t) => {
  const h = await startHarness({});
  t.after(() => h.close());
  const agent = `spiffe://${TD}/dev/carol`;
  const jt = await h.joinToken(agent);

  // Never logged in: the revocation is recorded, and the response says the agent is unknown.
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: agent, reason: 'not yet trusted' });
  assert.equal(rev.status, 201);
  assert.equal(rev.body.known, false);
  assert.match(rev.body.warning, /never logged in/);
  assert.equal(rev.body.active, true);
  const created = await auditEvents(h, 'kind=revocation.created');
  assert.equal(created[created.length - 1].details.agent_known, false);

  const refused = await loginJoin(h, jt);
  assert.equal(refused.status, 400);
  assert.equal(refused.body.code, 'TESSERA_AGENT_REVOKED');
  // Not consumed, and the refusal is attributed to the agent it named.
  const listed = (await h.admin('GET', '/v1/admin/join-tokens')).body.join_tokens.find((x: { spiffe_id: string }) => x.spiffe_id === agent);
  assert.equal(listed.state, 'active');
  assert.equal(listed.used_at, null);
  const failed = await auditEvents(h, `actor=${encodeURIComponent(agent)}&kind=auth.login`);
  assert.equal(failed.length, 1);
  assert.deepEqual([failed[0].actor, failed[0].result, failed[0].reason.code], [{ id: agent, verified: false }, 'failure', 'TESSERA_AGENT_REVOKED']);

  assert.equal((await h.admin('DELETE', `/v1/admin/revocations/${rev.body.id}`)).status, 200);
  const ok = await loginJoin(h, jt);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal((await h.agent(ok.body.access_token, 'GET', '/v1/whoami')).body.spiffe_id, agent);

  // Reused: refused, and attributed (unverified) to the ID the token was issued for.
  const reused = await loginJoin(h, jt);
  assert.equal(reused.body.code, 'TESSERA_JOIN_TOKEN_REUSED');
  const replays = await auditEvents(h, `actor=${encodeURIComponent(agent)}&kind=auth.join_token_reuse`);
  assert.equal(replays.length, 1);
  assert.deepEqual(replays[0].actor, { id: agent, verified: false });

  // Now that it has logged in, revoking it again reports it as known; the CLI warns for unknown ones.
  const known = await cli(h, ['revoke', 'agent', agent, '--ttl', '1m']);
  assert.equal(known.code, 0, known.stderr);
  assert.doesNotMatch(known.stderr, /warning/);
  const unknown = await cli(h, ['revoke', 'agent', `spiffe://${TD}/dev/carrol`]);
  assert.equal(unknown.code, 0, unknown.stderr);
  assert.match(unknown.stderr, /warning: .*spiffe:\/\/tessera\.local\/dev\/carrol.*never logged in/);
  assert.match(unknown.stdout, /revoked agent spiffe:\/\/tessera\.local\/dev\/carrol/);
});
