/**
 * The generic `http` rotator (docs/rotation.md "http", ADR 0277): Tessera POSTs JSON to an
 * operator-configured endpoint (`rotation.http_rotators.<name>`), authenticated with a credential
 * held in kv (`auth_secret`, read and audited at each call):
 *   create → `{"action":"create","path":P,"version":N}` ⇒ 2xx `{"value":"<new credential>","id"?:"<its id>"}`
 *   retire → `{"action":"retire","path":P,"version":old,"id":<id returned by its create, or null>}` ⇒ any 2xx
 * The connection goes through the proxy's SSRF guard (src/proxy/ssrf.ts): the name is resolved
 * by Tessera, non-public addresses are refused unless `allow_private` covers them, and the socket
 * is pinned to the vetted address. Redirects are not followed; every call has `timeout`; the
 * response body is read up to 64 KiB and validated with zod.
 */
import { z } from 'zod';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { fail, isTesseraError, TesseraError } from '../../shared/errors.js';
import { deadline } from '../../shared/deadline.js';
import { createSsrfGuard, type SsrfGuard } from '../../proxy/ssrf.js';
import type { HttpRotatorConfig } from '../config.js';
import type { RotatorSpec } from '../options.js';
import type { Rotator } from './types.js';

type HttpSpec = Extract<RotatorSpec, { kind: 'http' }>;

export const MAX_RESPONSE_BYTES = 64 * 1024;

const createAnswer = z.object({
  value: z.string().min(1).max(32 * 1024),
  id: z.string().min(1).max(256).regex(/^[\x20-\x7e]+$/, 'printable ASCII').optional(),
}).passthrough();

export interface HttpRotatorDeps {
  readonly endpoints: Readonly<Record<string, HttpRotatorConfig>>;
  /** Reads the endpoint's credential from kv (audited); TESSERA_SECRET_NOT_FOUND when absent. */
  readClientSecret(path: string, endpoint: string): Promise<string>;
  /** Default: a new guard with the system resolver. */
  readonly guard?: SsrfGuard;
}

async function readCapped(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw fail('TESSERA_ROTATION_HTTP_RESPONSE_INVALID', `the endpoint's answer is larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function httpRotator(deps: HttpRotatorDeps): Rotator<HttpSpec> {
  const guard = deps.guard ?? createSsrfGuard();
  const dispatchers = new Map<string, Dispatcher>();

  function endpointOf(name: string): HttpRotatorConfig {
    const c = deps.endpoints[name];
    if (!c) throw fail('TESSERA_ROTATION_ROTATOR_UNKNOWN', `no http rotator "${name}" under rotation.http_rotators`);
    return c;
  }

  async function call(name: string, body: Record<string, unknown>, signal: AbortSignal): Promise<string> {
    const c = endpointOf(name);
    let secret: string;
    try {
      secret = await deps.readClientSecret(c.auth_secret, name);
    } catch (e) {
      if (isTesseraError(e) && e.code === 'TESSERA_SECRET_NOT_FOUND') throw fail('TESSERA_ROTATION_HTTP_AUTH_MISSING', `the credential of http rotator "${name}" (kv ${c.auth_secret}) does not exist; store it with tessera kv put`);
      throw e;
    }
    let dispatcher = dispatchers.get(name);
    if (!dispatcher) {
      dispatcher = guard.dispatcher({ allow: c.allow_private });
      dispatchers.set(name, dispatcher);
    }
    const auth = c.auth_scheme === '' ? secret : `${c.auth_scheme} ${secret}`;
    let res: Response;
    const limit = deadline(c.timeout, signal);
    try {
      res = (await undiciFetch(c.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', [c.auth_header]: auth },
        body: JSON.stringify(body),
        redirect: 'manual',
        dispatcher,
        signal: limit.signal,
      })) as unknown as Response;
    } catch (e) {
      limit.done();
      const cause = (e as { cause?: unknown }).cause;
      if (isTesseraError(cause)) throw new TesseraError('TESSERA_ROTATION_HTTP_FAILED', `http rotator "${name}": ${cause.code}: ${cause.message}`, { endpoint: name, cause: cause.code });
      const why = (e as Error).name === 'TimeoutError' || (e as Error).name === 'AbortError' ? `no answer within ${c.timeout / 1000} s` : String((cause as { code?: string })?.code ?? (e as Error).message).slice(0, 120);
      throw new TesseraError('TESSERA_ROTATION_HTTP_FAILED', `http rotator "${name}": ${why}`, { endpoint: name });
    }
    let text: string;
    try {
      text = await readCapped(res);
    } catch (e) {
      if (isTesseraError(e)) throw e;
      throw new TesseraError('TESSERA_ROTATION_HTTP_FAILED', `http rotator "${name}": the answer was cut off (${(e as Error).name})`, { endpoint: name });
    } finally {
      limit.done();
    }
    if (res.status < 200 || res.status > 299) throw new TesseraError('TESSERA_ROTATION_HTTP_FAILED', `http rotator "${name}" answered ${res.status} to ${String(body.action)}`, { endpoint: name, status: res.status });
    return text;
  }

  return {
    async apply(spec, c) {
      const text = await call(spec.endpoint, { action: 'create', path: c.path, version: c.fromVersion + 1 }, c.signal);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw fail('TESSERA_ROTATION_HTTP_RESPONSE_INVALID', `http rotator "${spec.endpoint}" answered create with a body that is not JSON`);
      }
      const parsed = createAnswer.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw fail('TESSERA_ROTATION_HTTP_RESPONSE_INVALID', `http rotator "${spec.endpoint}" answered create without a usable credential: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
      }
      return { value: parsed.data.value, ...(parsed.data.id !== undefined ? { ref: parsed.data.id } : {}) };
    },
    // The value came from the endpoint and is sealed in the intent: the endpoint already has it.
    async resume() {},
    async retire(spec, c) {
      await call(spec.endpoint, { action: 'retire', path: c.path, version: c.version, id: c.ref }, c.signal);
      return { result: 'retired' };
    },
  };
}
