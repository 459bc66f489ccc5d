/**
 * A small, honest HTTP protocol peer for the SDK and CLI tests: a real node:http server on
 * loopback that speaks Tessera's documented wire contract (RFC 8693 token endpoint with
 * RFC 6749 errors, `{error:{code,message,request_id}}` elsewhere) for the endpoints the
 * client side uses. It is not Tessera; end-to-end tests against the real server live in
 * the lead's suite.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const ADMIN_TOKEN = 'tsr_admin_peer_secret_admin_token_0123456789';
export const FAKE_SIGNATURE = 'SIGNATURE_MUST_NEVER_BE_PRINTED';

export interface PeerRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  auth: string | undefined;
  body: unknown;
  form: Record<string, string> | undefined;
}

export function makeJwt(claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'ES256', kid: 'k1', typ: 'JWT' }): string {
  const enc = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc(header)}.${enc(claims)}.${FAKE_SIGNATURE}`;
}

export interface Peer {
  url: string;
  requests: PeerRequest[];
  /** Join tokens the peer accepts once. */
  joinTokens: Set<string>;
  /** Agent tokens the peer issued and will accept. */
  issued: Set<string>;
  /** Agent tokens the peer now reports as expired. */
  expired: Set<string>;
  /** Subject tokens received on the token endpoint (to observe file re-reads). */
  subjects: string[];
  secrets: Map<string, { value: string; version: number; mode: string; description?: string }>;
  auditEvents: Record<string, unknown>[];
  expiresIn: number;
  tokenEndpointDown: boolean;
  auditTampered: boolean;
  close(): Promise<void>;
}

let seq = 0;
const AUDIT_JOB_ID = 'ajob_peer000000000001';
let auditJobPolls = 0;

export async function startPeer(): Promise<Peer> {
  const peer: Omit<Peer, 'url' | 'close'> = {
    requests: [],
    joinTokens: new Set(),
    issued: new Set(),
    expired: new Set(),
    subjects: [],
    secrets: new Map(),
    auditEvents: [],
    expiresIn: 300,
    tokenEndpointDown: false,
    auditTampered: false,
  };
  let reqNo = 0;

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => send(res, 500, { error: { code: 'TESSERA_INTERNAL', message: String(err), request_id: 'req-x' } }));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://peer');
    const rid = `req-${++reqNo}`;
    const ctype = req.headers['content-type'] ?? '';
    const form = ctype.startsWith('application/x-www-form-urlencoded') ? Object.fromEntries(new URLSearchParams(raw)) : undefined;
    const body = ctype.startsWith('application/json') && raw ? (JSON.parse(raw) as unknown) : undefined;
    const auth = req.headers.authorization?.replace(/^Bearer /, '');
    const path = decodeURIComponent(url.pathname);
    peer.requests.push({ method: req.method ?? '', path, query: Object.fromEntries(url.searchParams), auth, body, form });
    const err = (status: number, code: string, message: string): void => send(res, status, { error: { code, message, request_id: rid } });
    const oauthErr = (status: number, error: string, code: string, desc: string): void => send(res, status, { error, error_description: desc, code, request_id: rid });
    const m = req.method;

    if (m === 'POST' && path === '/v1/oauth/token') {
      if (peer.tokenEndpointDown) return err(503, 'TESSERA_UNAVAILABLE', 'not ready');
      if (!form) return oauthErr(400, 'invalid_request', 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'form encoding required');
      if (form.grant_type !== 'urn:ietf:params:oauth:grant-type:token-exchange') return oauthErr(400, 'unsupported_grant_type', 'TESSERA_OAUTH_UNSUPPORTED_GRANT_TYPE', 'token exchange only');
      const subject = form.subject_token ?? '';
      peer.subjects.push(subject);
      let sub: string;
      if (form.subject_token_type === 'urn:tessera:token-type:join-token') {
        if (!peer.joinTokens.has(subject)) return oauthErr(400, 'invalid_grant', 'TESSERA_JOIN_TOKEN_REUSED', 'the join token was already used; join tokens are one-time');
        peer.joinTokens.delete(subject);
        sub = 'spiffe://example.org/agent/join';
      } else if (form.subject_token_type === 'urn:ietf:params:oauth:token-type:jwt') {
        if (!subject.startsWith('k8s-')) return oauthErr(400, 'invalid_grant', 'TESSERA_ATTEST_FAILED', 'the attestation token failed verification');
        sub = 'spiffe://example.org/ns/default/sa/agent';
      } else {
        return oauthErr(400, 'invalid_request', 'TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE', 'unsupported subject_token_type');
      }
      const token = makeJwt({ sub, aud: form.audience ?? 'tessera', jti: `jti-${++seq}`, iat: 1_700_000_000, exp: 1_700_000_000 + peer.expiresIn });
      peer.issued.add(token);
      return send(res, 200, { access_token: token, issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_type: 'Bearer', expires_in: peer.expiresIn });
    }

    if (path === '/v1/html') {
      res.writeHead(502, { 'content-type': 'text/html' });
      return void res.end('<html>bad gateway</html>');
    }

    if (path.startsWith('/v1/admin/')) {
      if (!auth) return err(401, 'TESSERA_ADMIN_TOKEN_MISSING', 'missing admin token');
      if (auth !== ADMIN_TOKEN) return err(401, 'TESSERA_ADMIN_TOKEN_INVALID', 'the admin token is not valid');
      const rest = path.slice('/v1/admin/'.length);
      if (m === 'POST' && rest === 'join-tokens') {
        const b = body as { spiffe_id?: string };
        if (!b?.spiffe_id?.startsWith('spiffe://')) return err(400, 'TESSERA_SPIFFE_ID_INVALID', 'spiffe_id is not a SPIFFE ID');
        const token = `tsr_join_${++seq}_secretpart`;
        peer.joinTokens.add(token);
        return send(res, 201, { token, id: `jt_${seq}`, spiffe_id: b.spiffe_id, expires_at: '2026-01-01T00:10:00.000Z' });
      }
      if (m === 'GET' && rest === 'agents') return send(res, 200, { agents: [{ spiffe_id: 'spiffe://example.org/agent/a', attestor: 'join_token' }] });
      if (rest === 'secrets' && m === 'GET') {
        const prefix = url.searchParams.get('prefix') ?? '';
        return send(res, 200, { secrets: [...peer.secrets.entries()].filter(([p]) => p.startsWith(prefix)).map(([p, s]) => ({ path: p, current_version: s.version, mode: s.mode, updated_at: 1_700_000_000_000 })), truncated: false });
      }
      if (rest.startsWith('secrets/')) {
        const p = rest.slice('secrets/'.length);
        if (m === 'PUT') {
          const b = body as { value?: unknown; mode?: string; description?: string };
          if (typeof b?.value !== 'string') return err(400, 'TESSERA_SECRET_VALUE_INVALID', 'value must be a string');
          const version = (peer.secrets.get(p)?.version ?? 0) + 1;
          peer.secrets.set(p, { value: b.value, version, mode: b.mode ?? 'inject', description: b.description });
          return send(res, 200, { path: p, version });
        }
        const s = peer.secrets.get(p);
        if (!s) return err(404, 'TESSERA_SECRET_NOT_FOUND', `no secret at ${p}`);
        if (m === 'GET') return send(res, 200, { path: p, version: s.version, mode: s.mode, value: s.value });
        if (m === 'DELETE') {
          peer.secrets.delete(p);
          res.writeHead(204);
          return void res.end();
        }
      }
      if (m === 'POST' && rest === 'policy/check') {
        const b = body as { action: string };
        const allow = b.action === 'secret.read';
        return send(res, 200, { decision: allow ? 'allow' : 'deny', policies: allow ? [{ id: 'demo-read', effect: 'permit', file: 'demo.cedar', line: 3 }] : [], errors: [] });
      }
      if (m === 'POST' && rest === 'revocations') {
        const b = body as { kind: string; target: string };
        if (!['agent', 'task', 'user', 'token', 'lease'].includes(b.kind)) return err(400, 'TESSERA_REVOCATION_INVALID', 'bad kind');
        return send(res, 201, { id: `rev_${++seq}`, kind: b.kind, target: b.target, expires_at: null, active: true, leases_revoked: 2, leases_retrying: 0, leases_disabled: 1, leases_irrevocable: 0 });
      }
      if (m === 'GET' && rest === 'revocations') return send(res, 200, { revocations: [{ id: 'rev_1', kind: 'agent', target: 'spiffe://example.org/agent/a' }] });
      if (m === 'DELETE' && rest.startsWith('revocations/')) {
        if (rest.endsWith('/rev_missing')) return err(404, 'TESSERA_REVOCATION_NOT_FOUND', 'no such revocation');
        res.writeHead(204);
        return void res.end();
      }
      if (m === 'DELETE' && rest.startsWith('leases/')) return send(res, 200, { lease_id: rest.slice(7), state: 'revoked' });
      if (m === 'GET' && rest === 'join-tokens') return send(res, 200, { join_tokens: [{ id: 'jt_1', spiffe_id: 'spiffe://example.org/agent/a', state: 'used', expires_at: '2026-01-01T00:10:00.000Z' }] });
      if (m === 'GET' && rest === 'leases') return send(res, 200, { leases: [{ lease_id: 'lease_1', engine: 'postgres', role: 'ro', state: 'active', expires_at: 1_767_225_900_000 }] });
      if (m === 'GET' && rest === 'audit') {
        const after = Number(url.searchParams.get('after_seq') ?? 0);
        const limit = Number(url.searchParams.get('limit') ?? 100);
        const kind = url.searchParams.get('kind');
        const events = peer.auditEvents.filter((e) => Number(e.seq) > after && (!kind || e.kind === kind)).slice(0, limit);
        return send(res, 200, { events, next_seq: events.length ? Number(events[events.length - 1]!.seq) : after });
      }
      // Verification is a background job: POST starts it (202), GET …/jobs/:id reports it (running once, then done).
      if (m === 'POST' && rest === 'audit/verify') {
        auditJobPolls = 0;
        return send(res, 202, { job: { id: AUDIT_JOB_ID, kind: 'verify', state: 'running', progress: { checked: 0 } }, created: true });
      }
      if (m === 'GET' && rest === `audit/jobs/${AUDIT_JOB_ID}`) {
        if (auditJobPolls++ === 0) return send(res, 200, { job: { id: AUDIT_JOB_ID, kind: 'verify', state: 'running', progress: { checked: 3 } } });
        const result = peer.auditTampered
          ? { ok: false, checked: 9, checkpoints: 1, problems: ['seq 7: hash mismatch (event modified)'] }
          : { ok: true, checked: peer.auditEvents.length, checkpoints: 1, problems: [] };
        return send(res, 200, { job: { id: AUDIT_JOB_ID, kind: 'verify', state: 'done', result } });
      }
      return err(404, 'TESSERA_NOT_FOUND', 'no such route');
    }

    // Agent endpoints.
    if (!auth) return err(401, 'TESSERA_TOKEN_MISSING', 'no bearer token');
    if (peer.expired.has(auth)) return err(401, 'TESSERA_TOKEN_EXPIRED', 'the token has expired');
    if (!peer.issued.has(auth)) return err(401, 'TESSERA_TOKEN_SIGNATURE_INVALID', 'unknown token');
    if (m === 'GET' && path.startsWith('/v1/secrets/')) {
      const p = path.slice('/v1/secrets/'.length);
      if (p === 'db/inject-only') return err(403, 'TESSERA_SECRET_NOT_READABLE', 'the secret is in inject mode');
      return send(res, 200, { path: p, version: 1, value: `value-of-${p}` });
    }
    const creds = /^\/v1\/creds\/([^/]+)\/([^/]+)$/.exec(path);
    if (m === 'POST' && creds) {
      if (creds[1] !== 'postgres') return err(404, 'TESSERA_ENGINE_NOT_FOUND', `no engine ${creds[1]}`);
      return send(res, 200, { lease_id: `lease_${++seq}`, expires_at: '2026-01-01T00:15:00.000Z', renewable: true, data: { username: 'v_agent_x', password: 'pw-dynamic-secret' } });
    }
    const renew = /^\/v1\/leases\/([^/]+)\/renew$/.exec(path);
    if (m === 'POST' && renew) return send(res, 200, { lease_id: renew[1], expires_at: '2026-01-01T00:30:00.000Z', renewable: true });
    if (m === 'DELETE' && path.startsWith('/v1/leases/')) {
      res.writeHead(204);
      return void res.end();
    }
    return err(404, 'TESSERA_NOT_FOUND', 'no such route');
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(peer, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** A port that was just free: connecting to it fails with ECONNREFUSED. */
export async function closedPortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}
