/**
 * The proxy's TLS-interception CA (issue 10, docs/proxy-tls.md, ADR 0207).
 *
 * An ECDSA P-256 self-signed CA, valid 10 years, created once per installation (`tessera init`,
 * `tessera dev`, or the first start of a server whose store has none) and shared by every
 * replica through the store:
 *  - `meta.proxy_ca_cert`: the certificate, PEM (public; served at GET /v1/proxy/ca.pem);
 *  - `meta.sealed:proxy-ca`: base64 of the PKCS#8 private key sealed with the master key, AAD =
 *    the meta key — the `sealed:` convention that `tessera operator rotate-master-key` re-wraps.
 * The key never leaves this process in clear: it is not logged, audited or returned by any API.
 *
 * Leaf certificates are minted here too (`mintLeafCertificate`), so that `@peculiar/x509` (and
 * the `reflect-metadata` polyfill its dependency injection needs) is loaded lazily, by this
 * module only, and only when the proxy needs a certificate.
 */
import { X509Certificate as NodeX509, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { Store } from '../store/port.js';
import type { Sealer } from '../secrets/sealer.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import { TesseraError } from '../shared/errors.js';

export interface ProxyCa {
  /** The CA certificate, PEM (what clients trust). */
  readonly certificatePem: string;
  /** SHA-256 of the certificate DER, upper-case hex pairs joined by `:` (as `openssl x509 -fingerprint -sha256` prints it). */
  readonly fingerprint: string;
}

export interface ProxyCaDeps {
  readonly store: Store;
  readonly sealer: Sealer;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  /** Shown in the CA's subject, `CN=Tessera proxy CA (<trust domain>)`, so a person can tell installations apart. */
  readonly trustDomain?: string;
}

/** Meta keys. `sealed:` + AAD = meta key is what master-key rotation re-wraps (src/secrets/rotate.ts). */
export const META_PROXY_CA_CERT = 'proxy_ca_cert';
export const META_PROXY_CA_KEY = 'sealed:proxy-ca';
/** CA validity: 10 years (3650 days) from creation (docs/proxy-tls.md "Rotation"). */
export const PROXY_CA_VALIDITY_MS = 3650 * 86_400_000;
/** notBefore of every certificate is backdated this much: clients whose clocks run behind still accept it. */
export const BACKDATE_MS = 3_600_000;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

type X509Module = typeof import('@peculiar/x509');
let x509Loading: Promise<X509Module> | undefined;

/** `@peculiar/x509` with Node's WebCrypto (globalThis.crypto, the same as node:crypto's webcrypto) as its provider; `reflect-metadata` first (tsyringe needs it). */
async function x509(): Promise<X509Module> {
  x509Loading ??= (async () => {
    await import('reflect-metadata');
    const mod = await import('@peculiar/x509');
    mod.cryptoProvider.set(globalThis.crypto);
    return mod;
  })();
  return x509Loading;
}

/** The CA's subject common name. */
export function caCommonName(trustDomain?: string): string {
  return trustDomain ? `Tessera proxy CA (${trustDomain})` : 'Tessera proxy CA';
}

/** A positive, non-zero, 16-byte serial number in hex (RFC 5280 §4.1.2.2: ≤ 20 octets, positive). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

async function readMeta(store: Store, key: string): Promise<string | undefined> {
  return (await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key]))?.value;
}

/** A new CA: key pair, self-signed certificate (PEM) and the PKCS#8 DER of the private key. */
async function generateCa(now: number, trustDomain: string | undefined): Promise<{ pem: string; pkcs8: Buffer }> {
  const x = await x509();
  const keys = (await globalThis.crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [caCommonName(trustDomain)] }, { O: ['Tessera'] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + PROXY_CA_VALIDITY_MS),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      // RFC 5280 §4.2.1.9: a CA that signs only end-entity (leaf) certificates.
      new x.BasicConstraintsExtension(true, 0, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign, true),
      await x.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { pem: cert.toString('pem'), pkcs8 };
}

function unavailable(message: string, cause?: unknown): TesseraError {
  return new TesseraError('TESSERA_PROXY_CA_UNAVAILABLE', message, undefined, cause === undefined ? undefined : { cause });
}

/**
 * The installation's proxy CA: loaded from the store, or created (and audited,
 * `proxy.ca_created`) when there is none. Race-safe across replicas: the key row is inserted
 * only if absent and everybody re-reads what won.
 *
 * Checks on load: the key opens with the master key, the certificate parses, is a CA, is
 * self-signed and belongs to that key. Throws TESSERA_PROXY_CA_UNAVAILABLE otherwise;
 * TESSERA_AUDIT_UNAVAILABLE when the creation cannot be audited (nothing is stored then).
 */
export async function loadOrCreateProxyCa(deps: ProxyCaDeps): Promise<ProxyCa & { privateKey: CryptoKey }> {
  const { store, sealer, clock, audit } = deps;
  if ((await readMeta(store, META_PROXY_CA_KEY)) === undefined) {
    const created = await generateCa(clock.now(), deps.trustDomain);
    const sealed = sealer.seal(created.pkcs8, META_PROXY_CA_KEY).toString('base64');
    created.pkcs8.fill(0);
    const cert = new NodeX509(created.pem);
    await audit.commit(
      store,
      async (tx) => {
        // The first replica to insert the key wins; its certificate goes with it.
        const r = await tx.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [META_PROXY_CA_KEY, sealed]);
        if (r.changes === 0) return false;
        await tx.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [META_PROXY_CA_CERT, created.pem]);
        return true;
      },
      (inserted) => (inserted
        ? {
          kind: 'proxy.ca_created', actor: { id: 'system' }, action: 'proxy.ca_create', resource: 'proxy-ca', result: 'success',
          details: { fingerprint: cert.fingerprint256, subject: caCommonName(deps.trustDomain), not_after: Date.parse(cert.validTo) },
        }
        : null),
    );
  }
  return loadProxyCa(store, sealer);
}

/** Loads and checks the stored CA (see loadOrCreateProxyCa); never creates one. */
export async function loadProxyCa(store: Store, sealer: Sealer): Promise<ProxyCa & { privateKey: CryptoKey }> {
  const sealedB64 = await readMeta(store, META_PROXY_CA_KEY);
  const pem = await readMeta(store, META_PROXY_CA_CERT);
  if (sealedB64 === undefined || pem === undefined) throw unavailable(`the proxy CA is incomplete in this store (${sealedB64 === undefined ? META_PROXY_CA_KEY : META_PROXY_CA_CERT} is missing); restart to create a new one after removing both meta rows`);
  let pkcs8: Buffer;
  try {
    pkcs8 = sealer.open(Buffer.from(sealedB64, 'base64'), META_PROXY_CA_KEY);
  } catch (e) {
    throw unavailable(`cannot open ${META_PROXY_CA_KEY} with master key ${sealer.keyId}: is this the master key the data directory was created with?`, e);
  }
  try {
    let cert: NodeX509;
    try {
      cert = new NodeX509(pem);
    } catch (e) {
      throw unavailable(`${META_PROXY_CA_CERT} is not a readable X.509 certificate`, e);
    }
    const keyObject = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    if (!cert.ca) throw unavailable(`${META_PROXY_CA_CERT} is not a CA certificate (basicConstraints cA is false)`);
    if (!cert.checkPrivateKey(keyObject) || !cert.verify(createPublicKey(keyObject))) throw unavailable(`${META_PROXY_CA_CERT} does not belong to the key in ${META_PROXY_CA_KEY} (or is not self-signed): the store was altered`);
    const copy = new Uint8Array(pkcs8);
    const privateKey = await globalThis.crypto.subtle.importKey('pkcs8', copy, EC_P256, false, ['sign']).finally(() => copy.fill(0));
    return { certificatePem: cert.toString(), fingerprint: cert.fingerprint256, privateKey };
  } finally {
    pkcs8.fill(0);
  }
}

/** A host a leaf certificate is for: a normalized DNS name, or an IP literal (IPv6 without brackets). */
export interface LeafSubject {
  readonly host: string;
  readonly ip: boolean;
}

/** The key pair every leaf of this process carries (ADR 0208): the CryptoKey pair and its private key in PEM for tls.createSecureContext. */
export interface LeafKeyPair {
  readonly keys: CryptoKeyPair;
  readonly privateKeyPem: string;
}

export async function generateLeafKeyPair(): Promise<LeafKeyPair> {
  const keys = (await globalThis.crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const der = Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const privateKeyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
  der.fill(0);
  return { keys, privateKeyPem };
}

/** Mints leaf certificates for one CA and one leaf key pair (ADR 0208). */
export interface LeafMinter {
  /** A leaf for `subject`, valid from `notBefore` to `notAfter` (epoch ms), PEM. */
  mint(subject: LeafSubject, validity: { notBefore: number; notAfter: number }): Promise<string>;
}

/**
 * Prepares minting for `ca` and `leaf`: the CA certificate is parsed once, and everything that
 * is the same in every leaf (issuer, key, the fixed extensions) is built once; a mint then adds
 * the serial, validity, subject and SAN and signs. Leaves carry: SAN dNSName (or iPAddress),
 * EKU serverAuth, keyUsage digitalSignature, basicConstraints CA:FALSE, AKI/SKI (OpenSSL's
 * strict mode wants both), a random 16-byte serial.
 */
export async function createLeafMinter(ca: ProxyCa & { privateKey: CryptoKey }, leaf: LeafKeyPair): Promise<LeafMinter> {
  const x = await x509();
  const caCert = new x.X509Certificate(ca.certificatePem);
  const caKeyId = caCert.getExtension(x.SubjectKeyIdentifierExtension)?.keyId;
  const publicKey = await x.PublicKey.create(leaf.keys.publicKey);
  const fixed = [
    new x.BasicConstraintsExtension(false, undefined, true),
    new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true),
    new x.ExtendedKeyUsageExtension([x.ExtendedKeyUsage.serverAuth], false),
    await x.SubjectKeyIdentifierExtension.create(publicKey),
    caKeyId ? new x.AuthorityKeyIdentifierExtension(caKeyId) : await x.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
  ];
  return {
    async mint(subject, validity) {
      if (subject.ip !== (isIP(subject.host) !== 0)) throw new TesseraError('TESSERA_PROXY_HOST_INVALID', 'leaf subject kind does not match the host');
      const cn = subject.host.length <= 64 ? [{ CN: [subject.host] }] : [];
      const cert = await x.X509CertificateGenerator.create({
        serialNumber: randomSerial(),
        subject: [{ O: ['Tessera proxy'] }, ...cn],
        issuer: caCert.subjectName,
        notBefore: new Date(validity.notBefore),
        notAfter: new Date(validity.notAfter),
        signingAlgorithm: SIGNING,
        publicKey,
        signingKey: ca.privateKey,
        extensions: [...fixed, new x.SubjectAlternativeNameExtension([{ type: subject.ip ? 'ip' : 'dns', value: subject.host }], false)],
      });
      return cert.toString('pem');
    },
  };
}

/** One leaf certificate (see createLeafMinter; for one-off use such as tests). */
export async function mintLeafCertificate(ca: ProxyCa & { privateKey: CryptoKey }, leaf: LeafKeyPair, subject: LeafSubject, validity: { notBefore: number; notAfter: number }): Promise<string> {
  return (await createLeafMinter(ca, leaf)).mint(subject, validity);
}
