/**
 * Client-side DPoP (RFC 9449) for the SDK: an ES256 key pair generated in memory, a proof per
 * request (§4.2), and the server nonces (§8, §9) remembered per origin. The private key never
 * leaves this object: no accessor, no export, not serialised; a process that ends loses it, and
 * its tokens become useless (a new login makes a new key). The one exception is a person's
 * login file (login-session.ts), which stores its key beside the refresh token bound to it.
 * No server code: node:crypto only.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An ES256 DPoP key: signs proofs; only its public half is ever visible. */
export class DpopKey {
  readonly alg = 'ES256';
  readonly #privateKey: KeyObject;
  /** The public key as a JWK (RFC 7517), as it goes in every proof header. */
  readonly publicJwk: Readonly<{ kty: 'EC'; crv: 'P-256'; x: string; y: string }>;
  /** RFC 7638 SHA-256 thumbprint of the public key: the `cnf.jkt` of tokens bound to it. */
  readonly thumbprint: string;
  readonly #header: string;

  private constructor(privateKey: KeyObject, publicKey: KeyObject) {
    this.#privateKey = privateKey;
    const j = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
    this.publicJwk = Object.freeze({ kty: 'EC', crv: 'P-256', x: j.x, y: j.y });
    this.thumbprint = createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${j.x}","y":"${j.y}"}`).digest('base64url');
    this.#header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: this.publicJwk });
  }

  /** A new P-256 key pair, in memory only. */
  static generate(): DpopKey {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return new DpopKey(privateKey, publicKey);
  }

  /**
   * A P-256 private key its owner keeps elsewhere (a person's login file, login-session.ts: the
   * one place the SDK stores a key, because a refresh token bound to it outlives the process).
   * Throws TypeError for another kind of key.
   */
  static fromPrivateKey(privateKey: KeyObject): DpopKey {
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new TypeError('a DPoP key must be a P-256 (ES256) private key');
    }
    return new DpopKey(privateKey, createPublicKey(privateKey));
  }

  /**
   * A DPoP proof JWT (RFC 9449 §4.2) for one request: `htm`, `htu` (the URL without query and
   * fragment), `iat` (`nowMs`), a random `jti`; `ath` when an access token goes with it; the
   * server's `nonce` when it asked for one.
   */
  proof(htm: string, url: string | URL, options: { nowMs: number; accessToken?: string; nonce?: string }): string {
    const u = new URL(url);
    const claims: Record<string, unknown> = { jti: randomBytes(16).toString('base64url'), htm, htu: `${u.origin}${u.pathname}`, iat: Math.floor(options.nowMs / 1000) };
    if (options.accessToken !== undefined) claims.ath = createHash('sha256').update(options.accessToken, 'ascii').digest('base64url');
    if (options.nonce !== undefined) claims.nonce = options.nonce;
    const input = `${this.#header}.${b64(claims)}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: this.#privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  }

  /** Never print the key: only its thumbprint. */
  toJSON(): { alg: string; thumbprint: string } {
    return { alg: this.alg, thumbprint: this.thumbprint };
  }
}

/** A DPoP key and the nonces the servers handed out (`DPoP-Nonce`), per origin. */
export class DpopSession {
  private readonly nonces = new Map<string, string>();
  constructor(
    readonly key: DpopKey = DpopKey.generate(),
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** The `DPoP` header value for a request (with `ath` when `accessToken` goes with it). */
  proof(method: string, url: string | URL, accessToken?: string): string {
    const nonce = this.nonces.get(new URL(url).origin);
    return this.key.proof(method, url, { nowMs: this.now(), ...(accessToken !== undefined ? { accessToken } : {}), ...(nonce !== undefined ? { nonce } : {}) });
  }

  /** Remembers a `DPoP-Nonce` the server sent (RFC 9449 §8.2: use the newest). */
  observe(url: string | URL, headers: Headers): void {
    const nonce = headers.get('dpop-nonce');
    if (!nonce || nonce.length > 512) return;
    const origin = new URL(url).origin;
    if (!this.nonces.has(origin) && this.nonces.size >= 100) this.nonces.delete(this.nonces.keys().next().value!);
    this.nonces.set(origin, nonce);
  }
}

/**
 * True when a response asks for a (new) server nonce: 401 with `WWW-Authenticate: DPoP
 * error="use_dpop_nonce"` (RFC 9449 §9), or the token endpoint's 400 `{"error":"use_dpop_nonce"}`
 * (§8; pass the parsed body).
 */
export function isNonceChallenge(status: number, headers: Headers, body?: unknown): boolean {
  if (status === 401) return /(^|,)\s*DPoP\b[^]*error="use_dpop_nonce"/i.test(headers.get('www-authenticate') ?? '');
  return status === 400 && body !== null && typeof body === 'object' && (body as { error?: unknown }).error === 'use_dpop_nonce';
}
