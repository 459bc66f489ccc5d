import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../shared/clock.js';
import { fail } from '../shared/errors.js';

/**
 * SPIFFE trust bundles (spiffe/spiffe standards/SPIFFE_Trust_Domain_and_Bundle.md §4): a JWKS
 * with optional `spiffe_sequence` and `spiffe_refresh_hint` (seconds), whose keys carry
 * `use: "x509-svid"` or `use: "jwt-svid"`. Only `jwt-svid` keys may verify JWT-SVIDs
 * (JWT-SVID §6), and each of them MUST have a `kid`.
 */
export interface ParsedBundle {
  readonly jwtKeys: readonly JWK[];
  readonly sequence?: number;
  readonly refreshHintMs?: number;
}

export function parseSpiffeBundle(json: unknown, where: string): ParsedBundle {
  if (json === null || typeof json !== 'object' || !Array.isArray((json as { keys?: unknown }).keys)) {
    throw fail('TESSERA_BUNDLE_INVALID', `${where}: a SPIFFE bundle must be a JSON object with a "keys" array`);
  }
  const b = json as { keys: unknown[]; spiffe_sequence?: unknown; spiffe_refresh_hint?: unknown };
  const jwtKeys: JWK[] = [];
  for (const k of b.keys.slice(0, 1000)) {
    if (k === null || typeof k !== 'object') continue;
    const key = k as JWK & { use?: unknown };
    // Keys for other uses (x509-svid) or with no use are not JWT-SVID authorities: skip them.
    if (key.use !== 'jwt-svid') continue;
    if (typeof key.kid !== 'string' || key.kid.length === 0) continue;
    if (key.kty !== 'RSA' && key.kty !== 'EC') continue;
    // jose only selects keys whose `use` is absent or "sig"; "jwt-svid" means signature use here.
    const { use: _use, ...rest } = key;
    jwtKeys.push({ ...rest, use: 'sig' });
  }
  const sequence = typeof b.spiffe_sequence === 'number' ? b.spiffe_sequence : undefined;
  const hint = typeof b.spiffe_refresh_hint === 'number' && b.spiffe_refresh_hint > 0 ? b.spiffe_refresh_hint * 1000 : undefined;
  return { jwtKeys, ...(sequence !== undefined ? { sequence } : {}), ...(hint !== undefined ? { refreshHintMs: hint } : {}) };
}

export interface KeySource {
  getKey(): Promise<JWTVerifyGetKey>;
}

/** A JWKS read from a file (read once, on first use). */
export function jwksFileSource(file: string, kind: 'jwks' | 'spiffe'): KeySource {
  let cached: Promise<JWTVerifyGetKey> | undefined;
  return {
    getKey() {
      cached ??= (async () => {
        let json: unknown;
        try {
          json = JSON.parse(await readFile(file, 'utf8'));
        } catch (e) {
          throw fail('TESSERA_BUNDLE_INVALID', `could not read ${kind === 'spiffe' ? 'SPIFFE bundle' : 'JWKS'} file ${file}: ${(e as Error).message}`);
        }
        return toKeySet(json, file, kind);
      })().catch((e: unknown) => {
        cached = undefined;
        throw e;
      });
      return cached;
    },
  };
}

/**
 * A SPIFFE bundle fetched from a bundle endpoint. Refreshed after `min(refresh, spiffe_refresh_hint)`;
 * when a refresh fails the last good bundle stays in use (as SPIRE does), so a brief outage of
 * the endpoint does not stop logins.
 */
export function spiffeBundleUrlSource(deps: { url: string; refreshMs: number; clock: Clock; fetch?: typeof fetch }): KeySource {
  const doFetch = deps.fetch ?? fetch;
  let current: { key: JWTVerifyGetKey; nextRefresh: number } | undefined;
  let inflight: Promise<JWTVerifyGetKey> | undefined;

  async function load(): Promise<JWTVerifyGetKey> {
    let json: unknown;
    try {
      const res = await doFetch(deps.url, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      json = await res.json();
    } catch (e) {
      throw fail('TESSERA_BUNDLE_INVALID', `could not fetch SPIFFE bundle from ${deps.url}: ${(e as Error).message}`);
    }
    const parsed = parseSpiffeBundle(json, deps.url);
    const key = createLocalJWKSet({ keys: [...parsed.jwtKeys] } as JSONWebKeySet);
    const every = Math.max(1000, Math.min(deps.refreshMs, parsed.refreshHintMs ?? deps.refreshMs));
    current = { key, nextRefresh: deps.clock.now() + every };
    return key;
  }

  return {
    async getKey() {
      if (current && deps.clock.now() < current.nextRefresh) return current.key;
      inflight ??= load().finally(() => {
        inflight = undefined;
      });
      try {
        return await inflight;
      } catch (e) {
        if (current) return current.key;
        throw e;
      }
    },
  };
}

function toKeySet(json: unknown, where: string, kind: 'jwks' | 'spiffe'): JWTVerifyGetKey {
  if (kind === 'spiffe') return createLocalJWKSet({ keys: [...parseSpiffeBundle(json, where).jwtKeys] } as JSONWebKeySet);
  if (json === null || typeof json !== 'object' || !Array.isArray((json as { keys?: unknown }).keys)) {
    throw fail('TESSERA_BUNDLE_INVALID', `${where}: a JWKS must be a JSON object with a "keys" array (RFC 7517 §5)`);
  }
  return createLocalJWKSet(json as JSONWebKeySet);
}
