import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { TesseraError } from '../shared/errors.js';

/**
 * AES-256-GCM sealing with associated data. Output layout: version(1) | iv(12) | tag(16) | ciphertext.
 * The AAD binds a ciphertext to where it belongs (path and version, key id, ...), so a
 * ciphertext moved to another row fails to open (NIST SP 800-38D §5.2.1.2).
 */
export interface Sealer {
  /** Identifies the key in use, stored next to wrapped data so rotation knows what to re-wrap. */
  readonly keyId: string;
  seal(plaintext: Uint8Array, aad: string): Buffer;
  open(sealed: Uint8Array, aad: string): Buffer;
}

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function aesGcmSeal(key: Uint8Array, plaintext: Uint8Array, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), ct]);
}

export function aesGcmOpen(key: Uint8Array, sealed: Uint8Array, aad: string): Buffer {
  const buf = Buffer.from(sealed);
  if (buf.length < 1 + IV_BYTES + TAG_BYTES || buf[0] !== VERSION) {
    throw new TesseraError('TESSERA_SECRET_DECRYPT_FAILED', 'sealed data is truncated or has an unknown format version');
  }
  const iv = buf.subarray(1, 1 + IV_BYTES);
  const tag = buf.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
  const ct = buf.subarray(1 + IV_BYTES + TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ct), decipher.final()]);
  } catch (e) {
    throw new TesseraError('TESSERA_SECRET_DECRYPT_FAILED', 'authenticated decryption failed: wrong master key, or the stored ciphertext was altered or moved', undefined, { cause: e });
  }
}

/** A Sealer over one 32-byte key (the master key). */
export function createKeySealer(key: Uint8Array, keyId: string): Sealer {
  if (key.length !== 32) throw new TesseraError('TESSERA_MASTER_KEY_INVALID', `master key must be 32 bytes, got ${key.length}`);
  const k = Buffer.from(key);
  return {
    keyId,
    seal: (plaintext, aad) => aesGcmSeal(k, plaintext, `${keyId}|${aad}`),
    open: (sealed, aad) => aesGcmOpen(k, sealed, `${keyId}|${aad}`),
  };
}
