/**
 * Every presented credential goes through the request pipeline's one authenticate step
 * (src/pipeline/authenticate.ts authenticatePresented): the `Authorization` header, and at the
 * token endpoint (RFC 8693 §2.1) the `subject_token` and the `actor_token` — of a delegation and
 * of an agent acting for a person — and the person's own token. Through real HTTP against the
 * whole server (a real OpenID Provider for the person), per kind of bad credential (forged,
 * expired, revoked, tampered):
 *   - each refusal keeps its exact code (TESSERA_TASK_ACTOR_TOKEN_INVALID,
 *     TESSERA_USER_ACTOR_INVALID, TESSERA_OAUTH_INVALID_GRANT, TESSERA_USER_TOKEN_INVALID) with
 *     the verification step in `cause`;
 *   - it is charged to its source (server.auth_failure_rate_limit, ADR 0142): after the burst,
 *     429 TESSERA_AUTH_RATE_LIMITED before any check;
 *   - it is audited once per window as `auth.token_refused` (resource token-exchange), with the
 *     claimed identity marked unverified (a Tessera-signed token: its agent, `verified: false`; a
 *     forged one: `unauthenticated` with `details.claimed_sub`), never a second `task.refused`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from './harness.js';
import { ACCESS, GRANT, ORCH, SUB, openTask, policyDir } from '../tasks/helpers.js';
import { startOp, userTokens, API_AUDIENCE, type TestOp } from '../users/op.js';
import { ManualClock } from '../../src/shared/clock.js';
import { USER_POLICIES } from '../users/policies.js';

const BURST = 4;

const REVOKED = 'spiffe://tessera.local/ns/ops/sa/revoked-helper';

type Reply = { status: number; body: any };

async function post(h: Harness, source: string, params: Record<string, string>): Promise<Reply> {
  const res = await fetch(`${h.url}/v1/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': source },
    body: new URLSearchParams({ grant_type: GRANT, subject_token_type: ACCESS, ...params }).toString(),
  });
  const body = (await res.json()) as any;
  if (typeof body?.access_token === 'string') h.sensitive.add(body.access_token);
  return { status: res.status, body };
}

async function eventsFrom(h: Harness, kind: string, source: string): Promise<any[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events WHERE kind = ? ORDER BY seq', [kind]);
  return rows.map((r) => JSON.parse(r.body)).filter((e: { where?: { source?: string } }) => e.where?.source === source);
}

/** A JWT that claims to be this Tessera's agent token for `sub`, with a signature no key made. */
function forged(h: Harness, sub: string): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'ES256', typ: 'JWT', kid: 'forged' })}.${b64({ iss: h.url, sub, aud: h.url, exp: 4_000_000_000, iat: 1, jti: 'x' })}.c2lnbmF0dXJl`;
}

/** The token with its payload edited (its signature no longer matches). */
function tampered(token: string): string {
  const [head, payload, sig] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8'));
  return `${head}.${Buffer.from(JSON.stringify({ ...claims, groups: ['admins'] })).toString('base64url')}.${sig}`;
}

interface Kind {
  readonly name: string;
  readonly params: () => Record<string, string>;
  readonly status: number;
  readonly code: string;
  /** The verification step's code (`cause` of the parameter refusal). */
  readonly cause?: RegExp;
  /** The audit actor of the aggregated refusal event. */
  readonly actor: { id: string; verified?: false };
  readonly claimedSub?: string;
}

/**
 * Sends `kind` BURST times from its own source (each refused with its exact code), then once
 * more (429 TESSERA_AUTH_RATE_LIMITED before any check), and checks the one aggregated event.
 */
async function assertCharged(h: Harness, kind: Kind, source: string): Promise<void> {
  for (let i = 0; i < BURST; i++) {
    const r = await post(h, source, kind.params());
    assert.equal(r.status, kind.status, `${kind.name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, kind.code, `${kind.name}: ${JSON.stringify(r.body)}`);
    if (kind.cause) assert.match(String(r.body.details?.cause), kind.cause, `${kind.name}: ${JSON.stringify(r.body)}`);
  }
  const limited = await post(h, source, kind.params());
  assert.equal(limited.status, 429, `${kind.name}: ${JSON.stringify(limited.body)}`);
  assert.equal(limited.body.code, 'TESSERA_AUTH_RATE_LIMITED', kind.name);
  const events = await eventsFrom(h, 'auth.token_refused', source);
  assert.equal(events.length, 1, `${kind.name}: one aggregated event, ${JSON.stringify(events)}`);
  const e = events[0]!;
  assert.deepEqual(e.actor, kind.actor, kind.name);
  assert.equal(e.resource, 'token-exchange', kind.name);
  assert.equal(e.details.suppressed, 0, kind.name);
  if (kind.cause) assert.match(String(e.reason.code), kind.cause, kind.name);
  if (kind.claimedSub !== undefined) assert.equal(e.details.claimed_sub, kind.claimedSub, kind.name);
  assert.deepEqual(await eventsFrom(h, 'task.refused', source), [], `${kind.name}: a refused credential is audited once, as such`);
}

let h: Harness;
let op: TestOp;
let orch: string;
let root: string;
let revoked: string;
let person: string;

before(async () => {
  op = await startOp();
  h = await startHarness({
    policyDir: policyDir(USER_POLICIES),
    config: {
      server: { listen: '127.0.0.1:0', trust_proxy: true, auth_failure_rate_limit: { per_second: 0.001, burst: BURST } },
      users: { issuers: [{ name: 'corp', issuer: op.issuer, discovery: true, audience: API_AUDIENCE, groups_claim: 'groups' }] },
    },
  });
  orch = await h.login(await h.joinToken(ORCH));
  root = (await openTask(h, orch, { scope: 'secret:team/**' })).token;
  revoked = await h.login(await h.joinToken(REVOKED));
  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: REVOKED, reason: 'test' })).status, 201);
  person = (await userTokens(op, 'alice')).accessToken;
  h.sensitive.add(person);
});

after(async () => {
  await h?.close();
  await op?.close();
});

const delegation = (actor: () => string) => () => ({ subject_token: root, actor_token: actor(), actor_token_type: ACCESS, scope: 'secret:team/a' });
const onBehalf = (actor: () => string, subject = () => person) => () => ({ subject_token: subject(), actor_token: actor(), actor_token_type: ACCESS, scope: 'secret:team/general/**', purpose: 'for alice' });

const KINDS: Kind[] = [
  { name: 'delegation, forged actor_token', params: delegation(() => forged(h, SUB)), status: 400, code: 'TESSERA_TASK_ACTOR_TOKEN_INVALID', cause: /^TESSERA_TOKEN_(KID_UNKNOWN|SIGNATURE_INVALID)$/, actor: { id: 'unauthenticated' }, claimedSub: SUB },
  { name: 'delegation, a revoked agent\'s actor_token', params: delegation(() => revoked), status: 400, code: 'TESSERA_TASK_ACTOR_TOKEN_INVALID', cause: /^TESSERA_TOKEN_REVOKED$/, actor: { id: REVOKED, verified: false } },
  { name: 'delegation, a tampered actor_token', params: delegation(() => tampered(orch)), status: 400, code: 'TESSERA_TASK_ACTOR_TOKEN_INVALID', cause: /^TESSERA_TOKEN_SIGNATURE_INVALID$/, actor: { id: 'unauthenticated' }, claimedSub: ORCH },
  { name: 'on behalf of a person, forged actor_token', params: onBehalf(() => forged(h, ORCH)), status: 400, code: 'TESSERA_USER_ACTOR_INVALID', cause: /^TESSERA_TOKEN_(KID_UNKNOWN|SIGNATURE_INVALID)$/, actor: { id: 'unauthenticated' }, claimedSub: ORCH },
  { name: 'on behalf of a person, a revoked agent\'s actor_token', params: onBehalf(() => revoked), status: 400, code: 'TESSERA_USER_ACTOR_INVALID', cause: /^TESSERA_TOKEN_REVOKED$/, actor: { id: REVOKED, verified: false } },
  { name: 'on behalf of a person, the person\'s token tampered', params: onBehalf(() => orch, () => tampered(person)), status: 400, code: 'TESSERA_USER_TOKEN_INVALID', actor: { id: ORCH, verified: false } },
  { name: 'subject_token of a revoked agent', params: () => ({ subject_token: revoked, scope: 'secret:team/a', purpose: 'x' }), status: 400, code: 'TESSERA_OAUTH_INVALID_GRANT', cause: /^TESSERA_TOKEN_REVOKED$/, actor: { id: REVOKED, verified: false } },
  { name: 'subject_token forged', params: () => ({ subject_token: forged(h, ORCH), scope: 'secret:team/a', purpose: 'x' }), status: 400, code: 'TESSERA_OAUTH_INVALID_GRANT', cause: /^TESSERA_TOKEN_(KID_UNKNOWN|SIGNATURE_INVALID)$/, actor: { id: 'unauthenticated' }, claimedSub: ORCH },
];

for (const [n, kind] of KINDS.entries()) {
  test(`${kind.name}: exact code, charged to the source (then 429 TESSERA_AUTH_RATE_LIMITED), one aggregated auth.token_refused with the claimed identity`, async () => {
    await assertCharged(h, kind, `203.0.113.${40 + n}`);
  });
}

test('a valid exchange from a limited source is refused unchecked too; another source is unaffected', async () => {
  const source = '203.0.113.90';
  for (let i = 0; i < BURST; i++) assert.equal((await post(h, source, delegation(() => forged(h, SUB))())).body.code, 'TESSERA_TASK_ACTOR_TOKEN_INVALID');
  const sub = await h.login(await h.joinToken(SUB));
  assert.equal((await post(h, source, delegation(() => sub)())).body.code, 'TESSERA_AUTH_RATE_LIMITED');
  const ok = await post(h, '198.51.100.90', delegation(() => sub)());
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
});

test('an expired actor_token (its agent\'s own login ran out while the parent task lives): TESSERA_TASK_ACTOR_TOKEN_INVALID (cause TESSERA_TOKEN_EXPIRED), charged, attributed to its agent (unverified)', async (t) => {
  const clock = new ManualClock(Date.now());
  const x = await startHarness({
    clock, policyDir: policyDir(),
    config: { server: { listen: '127.0.0.1:0', trust_proxy: true, auth_failure_rate_limit: { per_second: 0.001, burst: BURST } }, tokens: { agent_ttl: '5m' } },
  });
  t.after(() => x.close());
  const sub = await x.login(await x.joinToken(SUB));
  clock.advance(200_000);
  const parent = (await openTask(x, await x.login(await x.joinToken(ORCH)), { scope: 'secret:team/**' })).token;
  clock.advance(150_000);
  await assertCharged(x, {
    name: 'expired actor_token', params: () => ({ subject_token: parent, actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/a' }),
    status: 400, code: 'TESSERA_TASK_ACTOR_TOKEN_INVALID', cause: /^TESSERA_TOKEN_EXPIRED$/, actor: { id: SUB, verified: false },
  }, '203.0.113.77');
});
