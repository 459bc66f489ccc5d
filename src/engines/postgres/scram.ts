import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';

/**
 * SCRAM-SHA-256 verifiers computed in Tessera, so that `CREATE ROLE ... PASSWORD` carries the
 * verifier and never the password: PostgreSQL stores a value already in its verifier format as
 * is (it does not re-hash it), and the clear password cannot land in the server log or
 * `pg_stat_statements`.
 *
 * RFC 5802 §3 (with SHA-256 per RFC 7677):
 *   SaltedPassword = Hi(Normalize(password), salt, i)      -- Hi is PBKDF2 with HMAC (RFC 2898)
 *   ClientKey      = HMAC(SaltedPassword, "Client Key")
 *   StoredKey      = H(ClientKey)
 *   ServerKey      = HMAC(SaltedPassword, "Server Key")
 * PostgreSQL's stored format (src/include/common/scram-common.h, pg_authid.rolpassword):
 *   SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
 *
 * SASLprep (RFC 4013, the `Normalize` step) is the identity for the passwords Tessera
 * generates: base64url is printable ASCII, which SASLprep leaves unchanged.
 */
export const SCRAM_SALT_BYTES = 16;

/** Why 1: see docs/adr/0010-scram-iterations.md (random 256-bit passwords gain nothing from stretching). */
export const DEFAULT_SCRAM_ITERATIONS = 1;
export const MAX_SCRAM_ITERATIONS = 100_000;

export function scramSha256Verifier(password: string, salt: Uint8Array, iterations: number): string {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_SCRAM_ITERATIONS) throw new RangeError(`SCRAM iterations must be an integer in 1..${MAX_SCRAM_ITERATIONS}`);
  if (!/^[\x21-\x7e]+$/.test(password)) throw new RangeError('only printable ASCII passwords are supported (SASLprep is then the identity)');
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  salted.fill(0);
  clientKey.fill(0);
  return `SCRAM-SHA-256$${iterations}:${Buffer.from(salt).toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** A generated password: 32 random bytes, base64url (43 characters, 256 bits of entropy). */
export function encodePassword(random32: Uint8Array): string {
  if (random32.length !== 32) throw new RangeError('a password is made of exactly 32 random bytes');
  return Buffer.from(random32).toString('base64url');
}
