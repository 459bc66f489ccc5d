import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { Sealer } from '../secrets/sealer.js';
import type { AuditWriter } from '../audit/port.js';
import { TesseraError } from '../shared/errors.js';
import { SIGNING_KEY_AAD } from '../secrets/rotate.js';

/** Public JWK as published in the JWKS and the SPIFFE bundle. */
export interface PublicJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
  readonly kid: string;
  readonly alg: 'ES256';
  readonly use: string;
}

interface KeyEntry {
  readonly kid: string;
  readonly jwk: PublicJwk;
  readonly publicKey: KeyObject;
  /** Loaded lazily: only the signing key's private half is ever opened. */
  privateKey?: KeyObject;
  readonly activatesAt: number;
  retiresAt: number;
  readonly expiresAt: number;
}

type KeyRow = {
  kid: string;
  public_jwk: string;
  sealed_private: Buffer;
  activates_at: number;
  retires_at: number;
  expires_at: number;
};

export interface KeyManager {
  /** Loads keys; creates the first one when none is active. Call at start. */
  ensureKeys(): Promise<void>;
  /** Pre-publishes the next key and switches to it when the period ends; prunes expired keys. */
  rotateIfDue(): Promise<boolean>;
  /** Switches to a new key now; the old one keeps verifying until every token it signed expired. */
  rotateNow(options?: { revokePrevious?: boolean; actor?: string }): Promise<{ kid: string; revoked: string[] }>;
  /** Re-reads the key set from the store (another replica rotated or revoked a key). */
  reload(): Promise<void>;
  /** The key that signs now. */
  signingKey(): { kid: string; privateKey: KeyObject };
  /** Public key for a `kid`, from memory (never a store hit per request). */
  verificationKey(kid: string): KeyObject | undefined;
  /** Reloads from the store when an unknown kid appears (another replica rotated); rate-limited. */
  reloadForUnknownKid(kid: string): Promise<KeyObject | undefined>;
  jwks(): { keys: PublicJwk[] };
  /** SPIFFE trust bundle (SPIFFE Trust Domain and Bundle §4): JWKS + sequence + refresh hint. */
  bundle(): { keys: PublicJwk[]; spiffe_sequence: number; spiffe_refresh_hint: number };
}

const SEQUENCE_KEY = 'tokens.bundle_sequence';

export interface KeyManagerDeps {
  readonly store: Store;
  readonly sealer: Sealer;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  /** A new signing key every period. */
  readonly rotationPeriodMs: number;
  /** Minimum time a retired key stays published. */
  readonly overlapMs: number;
  /** Longest lifetime of a token a key signs: a retired key is kept at least this long. */
  readonly maxTokenTtlMs: number;
}

/**
 * ES256 signing keys. Private keys are sealed with the master key (AAD binds each to its kid);
 * the next key is published in the JWKS before it signs anything (so verifiers that cache the
 * JWKS already know it), and a retired key stays published until every token it signed has
 * expired (≥ overlap and ≥ the longest token TTL).
 */
export function createKeyManager(deps: KeyManagerDeps): KeyManager {
  const { store, sealer, clock, audit } = deps;
  const retention = Math.max(deps.overlapMs, deps.maxTokenTtlMs + 60_000);
  const prepublish = Math.min(deps.overlapMs, Math.floor(deps.rotationPeriodMs / 4));
  let keys = new Map<string, KeyEntry>();
  let sequence = 0;
  let lastReload = 0;

  function entryOf(row: KeyRow): KeyEntry {
    const jwk = JSON.parse(row.public_jwk) as PublicJwk;
    return {
      kid: row.kid,
      jwk,
      publicKey: createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' }),
      activatesAt: row.activates_at,
      retiresAt: row.retires_at,
      expiresAt: row.expires_at,
    };
  }

  async function load(): Promise<void> {
    const now = clock.now();
    const rows = await store.all<KeyRow>('SELECT kid, public_jwk, sealed_private, activates_at, retires_at, expires_at FROM signing_keys WHERE expires_at > ?', [now]);
    const next = new Map<string, KeyEntry>();
    for (const r of rows) {
      const existing = keys.get(r.kid);
      const e = entryOf(r);
      if (existing?.privateKey) e.privateKey = existing.privateKey;
      next.set(r.kid, e);
    }
    keys = next;
    const seq = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [SEQUENCE_KEY]);
    sequence = seq ? Number(seq.value) : 0;
    lastReload = now;
  }

  async function bumpSequence(tx: Pick<Store, 'run'>): Promise<void> {
    await tx.run(
      `INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)`,
      [SEQUENCE_KEY],
    );
  }

  async function createKey(activatesAt: number, retireOldAt?: { kid: string; at: number }, actor = 'system'): Promise<string> {
    const kid = randomBytes(12).toString('base64url');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
    const jwk: PublicJwk = { kty: 'EC', crv: 'P-256', x: pub.x, y: pub.y, kid, alg: 'ES256', use: 'jwt-svid' };
    const sealed = sealer.seal(Buffer.from(JSON.stringify(privateKey.export({ format: 'jwk' }))), SIGNING_KEY_AAD(kid));
    const retiresAt = activatesAt + deps.rotationPeriodMs;
    await store.transaction(async (tx) => {
      if (retireOldAt) {
        await tx.run('UPDATE signing_keys SET retires_at = ?, expires_at = ? WHERE kid = ? AND retires_at > ?', [retireOldAt.at, retireOldAt.at + retention, retireOldAt.kid, retireOldAt.at]);
      }
      await tx.run(
        'INSERT INTO signing_keys (kid, alg, use_, public_jwk, sealed_private, created_at, activates_at, retires_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [kid, 'ES256', 'jwt-svid', JSON.stringify(jwk), sealed, clock.now(), activatesAt, retiresAt, retiresAt + retention],
      );
      await bumpSequence(tx);
    });
    await audit.append({ kind: 'key.rotated', actor: { id: actor }, action: 'key.create', resource: `signing-key:${kid}`, result: 'success', details: { kid, purpose: 'token-signing' } });
    await load();
    return kid;
  }

  function active(now: number): KeyEntry | undefined {
    let best: KeyEntry | undefined;
    for (const k of keys.values()) {
      if (k.activatesAt <= now && now < k.retiresAt && (!best || k.activatesAt > best.activatesAt)) best = k;
    }
    return best;
  }

  function openPrivate(k: KeyEntry): KeyObject {
    if (!k.privateKey) {
      const row = keyRows.get(k.kid);
      if (!row) throw new TesseraError('TESSERA_KEY_UNAVAILABLE', `signing key ${k.kid} is not loaded`);
      const jwk = JSON.parse(sealer.open(row, SIGNING_KEY_AAD(k.kid)).toString('utf8')) as Record<string, string>;
      k.privateKey = createPrivateKey({ key: jwk, format: 'jwk' });
    }
    return k.privateKey;
  }

  // Sealed private halves of loaded keys, opened only for the key that signs.
  const keyRows = new Map<string, Buffer>();
  async function loadSealed(): Promise<void> {
    const rows = await store.all<{ kid: string; sealed_private: Buffer }>('SELECT kid, sealed_private FROM signing_keys WHERE expires_at > ?', [clock.now()]);
    keyRows.clear();
    for (const r of rows) keyRows.set(r.kid, Buffer.from(r.sealed_private));
  }

  async function prune(): Promise<void> {
    const { changes } = await store.transaction(async (tx) => {
      const r = await tx.run('DELETE FROM signing_keys WHERE expires_at <= ?', [clock.now()]);
      if (r.changes > 0) await bumpSequence(tx);
      return r;
    });
    if (changes > 0) await load();
  }

  const manager: KeyManager = {
    async ensureKeys() {
      await load();
      if (!active(clock.now())) await createKey(clock.now());
      await manager.rotateIfDue();
      await loadSealed();
      // Fail at start, not on the first login, when the master key cannot open the signing key.
      openPrivate(active(clock.now())!);
    },

    async rotateIfDue() {
      await load();
      const now = clock.now();
      let changed = false;
      const current = active(now);
      if (!current) {
        await createKey(now);
        changed = true;
      } else {
        const hasNext = [...keys.values()].some((k) => k.activatesAt >= current.retiresAt);
        if (!hasNext && now >= current.retiresAt - prepublish) {
          await createKey(current.retiresAt);
          changed = true;
        }
      }
      await prune();
      if (changed) await loadSealed();
      return changed;
    },

    async rotateNow(options = {}) {
      const now = clock.now();
      const current = active(now);
      const kid = await createKey(now, current ? { kid: current.kid, at: now } : undefined, options.actor);
      let revoked: string[] = [];
      if (options.revokePrevious) {
        // Emergency rotation (a key may be compromised): every other key leaves the key set now,
        // so every token it signed is refused (TESSERA_TOKEN_KID_UNKNOWN) and agents log in again.
        revoked = [...keys.keys()].filter((k) => k !== kid);
        await store.transaction(async (tx) => {
          await tx.run('UPDATE signing_keys SET retires_at = ?, expires_at = ? WHERE kid <> ? AND expires_at > ?', [now, now, kid, now]);
          await bumpSequence(tx);
        });
        for (const k of revoked) {
          await audit.append({ kind: 'key.rotated', actor: { id: options.actor ?? 'system' }, action: 'key.revoke', resource: `signing-key:${k}`, result: 'success', details: { kid: k, purpose: 'token-signing' } });
        }
        await load();
      }
      await loadSealed();
      return { kid, revoked };
    },

    async reload() {
      await load();
      await loadSealed();
    },

    signingKey() {
      const k = active(clock.now());
      if (!k) throw new TesseraError('TESSERA_KEY_UNAVAILABLE', 'no active signing key; the key rotation job may be failing (see the log)');
      return { kid: k.kid, privateKey: openPrivate(k) };
    },

    verificationKey(kid) {
      const k = keys.get(kid);
      if (!k || k.expiresAt <= clock.now()) return undefined;
      return k.publicKey;
    },

    async reloadForUnknownKid(kid) {
      // At most one reload per second, so garbage kids cannot turn into a store flood.
      if (clock.now() - lastReload < 1000) return undefined;
      await load();
      await loadSealed();
      return manager.verificationKey(kid);
    },

    jwks() {
      // RFC 7517 §4.2: generic JOSE verifiers (jose, oauth4webapi, ...) only select keys whose
      // `use` is absent or "sig"; "jwt-svid" is the SPIFFE bundle's value, published by bundle().
      const now = clock.now();
      return { keys: [...keys.values()].filter((k) => k.expiresAt > now).map((k) => ({ ...k.jwk, use: 'sig' })) };
    },

    bundle() {
      // SPIFFE Trust Domain and Bundle §4.2.1: JWT-SVID signing keys carry `use: "jwt-svid"`.
      const now = clock.now();
      const bundleKeys = [...keys.values()].filter((k) => k.expiresAt > now).map((k) => ({ ...k.jwk, use: 'jwt-svid' }));
      // The hint must be well inside the pre-publication window: a verifier that last fetched
      // just before the next key appeared must refetch (hint + the 60 s HTTP max-age + up to
      // 60 s rotation-job delay) before that key starts signing. Half the window, 1 min … 1 h.
      return { keys: bundleKeys, spiffe_sequence: sequence, spiffe_refresh_hint: Math.max(60, Math.min(3600, Math.floor(prepublish / 2000))) };
    },
  };
  return manager;
}
