/**
 * TLS interception for routed hosts (issue 10, docs/proxy-tls.md, ADR 0208): a leaf certificate
 * per host, signed by the proxy CA, cached and shared.
 *
 *  - Host names are validated and normalized (`normalizeInterceptHost`) before anything is minted.
 *  - One leaf key pair per interceptor (per process), reused across leaves (ADR 0208): minting is
 *    one ECDSA signature; the CA key sits in the same process memory anyway.
 *  - Validity: `leafTtlMs`, never past the CA's notAfter; notBefore backdated 1 h (clock skew).
 *  - Cache: LRU bounded by `cacheSize` (default 1000 hosts); an entry is reused until
 *    `min(1 h, ttl / 4)` before its notAfter, then minted again.
 *  - Single-flight: concurrent requests for the same host share one minting; a failed minting
 *    is not cached.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import { isIPv4, isIPv6 } from 'node:net';
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../shared/clock.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import { BACKDATE_MS, createLeafMinter, generateLeafKeyPair, type LeafKeyPair, type LeafMinter, type LeafSubject, type ProxyCa } from './ca.js';

export interface TlsInterceptor {
  /**
   * The TLS server context for `servername` (a DNS name or IP literal): leaf + CA chain.
   * Throws TESSERA_PROXY_HOST_INVALID (bad name), TESSERA_PROXY_CA_EXPIRED,
   * TESSERA_PROXY_INTERCEPT_FAILED (minting failed).
   */
  secureContextFor(servername: string): Promise<SecureContext>;
  readonly ca: ProxyCa;
}

export interface TlsInterceptorOptions {
  readonly clock: Clock;
  /** Leaf certificate lifetime, ms (config `proxy.leaf_ttl`); capped by the CA's notAfter. */
  readonly leafTtlMs: number;
  /** Hosts kept in the cache (LRU); default 1000. */
  readonly cacheSize?: number;
  /** Called once per minted leaf (metrics, tests). */
  readonly onMint?: (host: string) => void;
}

const RENEW_BEFORE_MS = 3_600_000;
const MIN_LEAF_TTL_MS = 60_000;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Validates and normalizes a host to intercept: IPv4 dotted-quad, IPv6 (brackets allowed,
 * compressed as Node prints it, no zone id), or a DNS name — lower-cased, one trailing dot
 * dropped, labels of 1–63 `[a-z0-9-]` not starting or ending with `-`, ≤ 253 characters, no
 * wildcard, and not ending in an all-numeric label (WHATWG URL would read it as IPv4).
 * RFC 1123 §2.1, RFC 5280 §4.2.1.6. Throws TESSERA_PROXY_HOST_INVALID.
 */
export function normalizeInterceptHost(input: string): LeafSubject {
  const bad = (why: string): TesseraError => new TesseraError('TESSERA_PROXY_HOST_INVALID', `host ${JSON.stringify(input.slice(0, 300))} is not a valid host name or IP literal: ${why}`);
  if (typeof input !== 'string' || input.length === 0) throw bad('empty');
  let h = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  if (h.includes(':')) {
    if (h.includes('%')) throw bad('IPv6 zone ids are not accepted');
    if (!isIPv6(h)) throw bad('not an IPv6 address');
    return { host: new URL(`http://[${h}]/`).hostname.slice(1, -1), ip: true };
  }
  if (isIPv4(h)) return { host: h, ip: true };
  h = h.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253) throw bad('a DNS name has 1 to 253 characters');
  if (h.includes('*')) throw bad('wildcards are not accepted');
  const labels = h.split('.');
  for (const l of labels) if (!LABEL.test(l)) throw bad(`label ${JSON.stringify(l.slice(0, 70))} is not 1–63 letters, digits or inner hyphens`);
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) throw bad('the last label is numeric (not an IPv4 address either)');
  return { host: h, ip: false };
}

interface Entry {
  readonly context: Promise<SecureContext>;
  /** Reuse until (epoch ms); set once minted. */
  renewAt?: number;
}

/**
 * Leaf certificates per host for the CA `ca` (see the module comment). The leaf key pair is
 * generated on first use.
 */
export function createTlsInterceptor(ca: ProxyCa & { privateKey: CryptoKey }, opts: TlsInterceptorOptions): TlsInterceptor {
  const cacheSize = Math.max(1, opts.cacheSize ?? 1000);
  const ttl = Math.max(MIN_LEAF_TTL_MS, opts.leafTtlMs);
  const renewMargin = Math.min(RENEW_BEFORE_MS, Math.floor(ttl / 4));
  const caNotAfter = Date.parse(new X509Certificate(ca.certificatePem).validTo);
  const cache = new Map<string, Entry>();
  let minter: Promise<{ keys: LeafKeyPair; minter: LeafMinter }> | undefined;
  const publicCa: ProxyCa = { certificatePem: ca.certificatePem, fingerprint: ca.fingerprint };

  async function mint(subject: LeafSubject, entry: { renewAt?: number }): Promise<SecureContext> {
    const now = opts.clock.now();
    if (now >= caNotAfter - MIN_LEAF_TTL_MS) throw new TesseraError('TESSERA_PROXY_CA_EXPIRED', `the proxy CA ${ca.fingerprint} expired (or expires within a minute) on ${new Date(caNotAfter).toISOString()}; no certificate can be minted for ${subject.host}`);
    const notAfter = Math.min(now + ttl, caNotAfter);
    try {
      minter ??= generateLeafKeyPair().then(async (keys) => ({ keys, minter: await createLeafMinter(ca, keys) }));
      const { keys, minter: m } = await minter.catch((e: unknown) => {
        minter = undefined; // a failed setup is retried by the next minting
        throw e;
      });
      const pem = await m.mint(subject, { notBefore: now - BACKDATE_MS, notAfter });
      const context = createSecureContext({ key: keys.privateKeyPem, cert: `${pem.trim()}\n${ca.certificatePem.trim()}\n`, minVersion: 'TLSv1.2' });
      entry.renewAt = notAfter - renewMargin;
      opts.onMint?.(subject.host);
      return context;
    } catch (e) {
      if (isTesseraError(e)) throw e;
      throw new TesseraError('TESSERA_PROXY_INTERCEPT_FAILED', `cannot mint a certificate for ${subject.host}: ${(e as Error).message}`, undefined, { cause: e });
    }
  }

  return {
    ca: publicCa,
    secureContextFor(servername) {
      let subject: LeafSubject;
      try {
        subject = normalizeInterceptHost(servername);
      } catch (e) {
        return Promise.reject(e);
      }
      const key = subject.host;
      const hit = cache.get(key);
      if (hit && (hit.renewAt === undefined || opts.clock.now() < hit.renewAt)) {
        cache.delete(key); // LRU: most recent last
        cache.set(key, hit);
        return hit.context;
      }
      const holder: { renewAt?: number } = {};
      const context = mint(subject, holder);
      const entry: Entry = {
        context,
        get renewAt() {
          return holder.renewAt;
        },
      };
      cache.delete(key);
      cache.set(key, entry);
      // A failed minting is not kept: the next request tries again.
      context.catch(() => {
        if (cache.get(key) === entry) cache.delete(key);
      });
      while (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
      return context;
    },
  };
}
