import { createServer, type Server } from 'node:http';
import assert from 'node:assert/strict';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { TesseraError } from '../../src/shared/errors.js';

export interface TestKey {
  readonly alg: 'RS256' | 'ES256';
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function makeKey(alg: 'RS256' | 'ES256', kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg };
  return { alg, kid, privateKey, publicJwk };
}

export async function sign(key: TestKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
}

/** A real loopback HTTP server that serves JSON documents by path. */
export async function serveJson(docs: Record<string, unknown>): Promise<{ url: string; hits: Record<string, number>; close(): Promise<void> }> {
  const hits: Record<string, number> = {};
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits[path] = (hits[path] ?? 0) + 1;
    if (!Object.hasOwn(docs, path)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(docs[path]));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** For assert.rejects/throws: a TesseraError with `code` (and `details.check`, when given). */
export function failsWith(code: string, check?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof TesseraError, `expected TesseraError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (check) assert.equal(e.details?.check, check, e.message);
    return true;
  };
}
