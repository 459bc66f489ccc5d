/**
 * Fixtures for the token unit tests: a real in-memory SQLite store, a real master-key sealer,
 * the real revocation service, and an independent JWS builder on node:crypto (deliberately not
 * src/tokens/jws.ts, so a bug there cannot hide in the fixtures).
 */
import { createHmac, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { masterSealer } from '../../src/secrets/index.js';
import { createLeaseService } from '../../src/leases/index.js';
import { createRevocationService } from '../../src/revocations/index.js';
import { createKeyManager, createTokenService, type KeyManager } from '../../src/tokens/index.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { Store } from '../../src/store/port.js';
import type { Sealer } from '../../src/secrets/sealer.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { createTrustDomains } from '../../src/identity/trust-domains.js';

export const HOUR = 3_600_000;
export const MIN = 60_000;
export const ISSUER = 'https://tessera.test';
export const AGENT = 'spiffe://tessera.test/ns/prod/sa/agent';
/** The trust domains the token fixtures serve: tessera.test, plus federated spire.test. */
export const TRUST_DOMAINS = createTrustDomains('tessera.test', ['spire.test']);

/** `assert.rejects` / `assert.throws` predicate on the stable error code (names the actual code on mismatch). */
export const code = (c: string) => (e: unknown): boolean => {
  if (e instanceof TesseraError && e.code === c) return true;
  throw new Error(`expected ${c}, got ${e instanceof TesseraError ? `${e.code}: ${e.message}` : String(e)}`);
};

export interface KeyFixture {
  store: Store;
  clock: ManualClock;
  audit: MemoryAuditWriter;
  sealer: Sealer;
  keys: KeyManager;
}

export const PERIOD = 24 * HOUR;
export const OVERLAP = HOUR;
export const MAX_TTL = 15 * MIN;

export async function keyFixture(opts: { store?: Store; sealer?: Sealer; clock?: ManualClock } = {}): Promise<KeyFixture> {
  const store = opts.store ?? openSqliteStore({ file: ':memory:' });
  if (!opts.store) await store.migrate();
  const clock = opts.clock ?? new ManualClock();
  const audit = new MemoryAuditWriter();
  const sealer = opts.sealer ?? masterSealer(randomBytes(32));
  const keys = createKeyManager({ store, sealer, clock, audit, rotationPeriodMs: PERIOD, overlapMs: OVERLAP, maxTokenTtlMs: MAX_TTL });
  return { store, clock, audit, sealer, keys };
}

export async function tokenFixture(opts: { skewMs?: number } = {}) {
  const f = await keyFixture();
  await f.keys.ensureKeys();
  const leases = createLeaseService({ store: f.store, clock: f.clock, audit: f.audit, engines: [] });
  const revocations = createRevocationService({ store: f.store, clock: f.clock, audit: f.audit, leases, trustDomains: TRUST_DOMAINS });
  await revocations.refresh();
  const tokens = createTokenService({ keys: f.keys, clock: f.clock, issuer: ISSUER, agentTtlMs: 5 * MIN, skewMs: opts.skewMs ?? 30_000, revocations, trustDomains: TRUST_DOMAINS });
  return { ...f, revocations, tokens };
}

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs a JWS compact token with ES256 (P1363 by default, DER on request) or RS256. */
export function forge(header: Record<string, unknown>, payload: Record<string, unknown> | string, key: KeyObject, opts: { der?: boolean } = {}): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const rsa = key.asymmetricKeyType === 'rsa';
  const sig = cryptoSign('sha256', Buffer.from(input), rsa ? key : { key, dsaEncoding: opts.der ? 'der' : 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

/** HS256 keyed with arbitrary bytes (the "public key as HMAC secret" algorithm-confusion attack). */
export function forgeHs256(header: Record<string, unknown>, payload: Record<string, unknown>, secret: string | Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

export function unsigned(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${b64(header)}.${b64(payload)}.`;
}

/** Valid agent-token claims at `nowMs`; override any of them (undefined removes a claim). */
export function claims(nowMs: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(nowMs / 1000);
  const c: Record<string, unknown> = { iss: ISSUER, sub: AGENT, aud: ISSUER, iat, nbf: iat, exp: iat + 300, jti: randomBytes(16).toString('base64url'), ...over };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return c;
}

export function decodePart(token: string, i: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[i]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
