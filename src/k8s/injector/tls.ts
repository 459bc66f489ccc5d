/**
 * The webhook's certificate and key, read from files and re-read when they change: cert-manager
 * renews the Secret `tessera-injector-tls`, and kubelet swaps the mounted files in place (an
 * atomic symlink switch, so polling the contents is more reliable than fs.watch on them).
 *
 * Errors: TESSERA_INJECTOR_TLS_INVALID (unreadable, not PEM, key not matching the certificate).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { fail } from '../../shared/errors.js';

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 of cert and key: what changes when the files do. */
  readonly digest: string;
  /** The leaf's SHA-256 fingerprint and expiry, for the log (never the key). */
  readonly fingerprint: string;
  readonly notAfter: string;
}

function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw fail('TESSERA_INJECTOR_TLS_INVALID', `cannot read the ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Reads and checks the pair; throws TESSERA_INJECTOR_TLS_INVALID naming the file and the problem. */
export function loadTls(certFile: string, keyFile: string): TlsMaterial {
  const cert = read(certFile, 'certificate (kubernetes.injector.tls_cert_file)');
  const key = read(keyFile, 'key (kubernetes.injector.tls_key_file)');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw fail('TESSERA_INJECTOR_TLS_INVALID', `${certFile} is not a PEM certificate`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    const msg = (e as Error).message;
    throw fail('TESSERA_INJECTOR_TLS_INVALID', /mismatch/i.test(msg) ? `the key ${keyFile} does not belong to the certificate ${certFile}` : `${keyFile} is not a usable PEM private key for ${certFile}`);
  }
  const digest = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  return { cert, key, digest, fingerprint: leaf.fingerprint256, notAfter: leaf.validTo };
}
