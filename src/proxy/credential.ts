/**
 * The proxy's credential step (DESIGN.md "Request pipeline"): the route's credential, obtained
 * just in time for the authorized principal and put in a header (`format`) or a query parameter.
 *
 *   - `secret`: a kv secret through kv.resolveForInjection — Cedar `secret.inject` for the agent
 *     (token scope `secret:<path>`), audited by kv as `secret.read` (action secret.inject);
 *   - `lease`: a dynamic lease through issueAuthorized (Cedar `cred.issue`, scope
 *     `cred:<engine>/<role>`), the same path as POST /v1/creds and the gateway; revoked when the
 *     request ends;
 *   - `oauth`: an OAuth 2.0 client-credentials access token (RFC 6749 §4.4) from the route's
 *     TokenSource (PROVIDERS part, src/proxy/oauth-client.ts), cached there until expiry.
 *
 * Every value is checked header-safe (no control characters: RFC 9110 §5.5) and returned with its
 * scrubber inputs, so the response is scrubbed of it (src/gateway/scrub).
 */
import type { AuditWhere } from '../audit/events.js';
import { issueAuthorized } from '../leases/authorized.js';
import { refusalOf, type RequestAuthorizer } from '../pipeline/authorize.js';
import type { SecretInput } from '../gateway/scrub/index.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import { formatOf, sourceOf, type CredentialSource, type ProxyRouteConfig } from './config.js';

/** The PROVIDERS part's TokenSource (src/proxy/oauth-client.ts), structurally. */
export interface AccessTokenSource {
  token(signal?: AbortSignal): Promise<{ accessToken: string; expiresAt: number }>;
}

export interface CredentialDeps {
  readonly authorizer: RequestAuthorizer;
  readonly kv: { resolveForInjection(principal: AgentPrincipal, path: string, authorizer: RequestAuthorizer, where?: AuditWhere): Promise<{ value: string; version?: number }> };
  readonly leases: {
    issue(req: { engine: string; role: string; principal: AgentPrincipal; ttlMs?: number; where?: AuditWhere }): Promise<{ lease_id: string; data: Readonly<Record<string, unknown>> }>;
    revoke(id: string, cause: string, ctx?: { principal?: AgentPrincipal }): Promise<unknown>;
  };
  /** Wall clock for the value cache (ms); default Date.now. */
  readonly now?: () => number;
  /** The OAuth client-credentials source of a route (PROVIDERS part); absent: oauth routes are refused at start. */
  readonly oauthSource?: (route: string) => AccessTokenSource | undefined;
}

/** One injected credential: where it goes, what to scrub, and its audit reference (never the value). */
export interface InjectedCredential {
  readonly header?: { readonly name: string; readonly value: string };
  readonly query?: { readonly name: string; readonly value: string };
  readonly secrets: readonly SecretInput[];
  /** `kv/<path>`, `lease:<engine>/<role>`, `oauth:<route>`. */
  readonly reference: string;
  readonly source: CredentialSource;
  /** A kv secret path (for the exposure record). */
  readonly secretPath?: string;
  /** Called once the request ended: revokes a lease. */
  release(): void;
}

export interface CredentialProvider {
  /** Throws TESSERA_PROXY_CREDENTIAL_UNAVAILABLE (502), or the pipeline's 403 refusal (secret.inject / cred.issue). */
  obtain(route: ProxyRouteConfig, principal: AgentPrincipal, where: AuditWhere, signal?: AbortSignal): Promise<InjectedCredential>;
}

/** RFC 9110 §5.5: field values are visible characters, SP and HTAB (obs-text allowed); no CR, LF, NUL or other controls. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f]/;

const unavailable = (route: string, why: string, cause?: unknown): TesseraError =>
  new TesseraError('TESSERA_PROXY_CREDENTIAL_UNAVAILABLE', `the credential of proxy route "${route}" could not be obtained: ${why}; an operator must fix the route's credential (docs/proxy.md "Credentials")`, { route }, { cause });

/** Fills `{name}` placeholders (validated at config load). */
export function fillFormat(format: string, values: Readonly<Record<string, string>>): string {
  return format.replace(/\{([a-z_]+)\}/g, (_, k: string) => values[k] ?? '');
}

/** How long a kv secret's value is reused before kv is read (and audits the read) again. */
export const SECRET_VALUE_TTL_MS = 1000;

export function createCredentialProvider(deps: CredentialDeps): CredentialProvider {
  const now = deps.now ?? (() => Date.now());
  /** kv values by path (bounded by the routes' paths), each reused for SECRET_VALUE_TTL_MS; one read in flight per path. */
  const values = new Map<string, { value: Promise<string>; until: number }>();
  /**
   * The value of a kv secret for `principal`: Cedar `secret.inject` (∩ the token's scope) is
   * decided for every request; kv itself is read — and audits the read — at most once per path
   * and SECRET_VALUE_TTL_MS, so a rotated or deleted secret takes effect within that time.
   */
  async function secretValue(path: string, principal: AgentPrincipal, where: AuditWhere): Promise<string> {
    const t = now();
    const hit = values.get(path);
    if (hit && hit.until > t) {
      const request = { principal, action: 'secret.inject', resource: { type: 'Secret', path } } as const;
      const d = deps.authorizer.authorize(request);
      if (!d.allowed) throw refusalOf(d, request);
      // Another principal's read in flight may be refused for that principal: then read as this one.
      return hit.value.catch(() => deps.kv.resolveForInjection(principal, path, deps.authorizer, where).then((r) => r.value));
    }
    const value = deps.kv.resolveForInjection(principal, path, deps.authorizer, where).then((r) => r.value);
    values.set(path, { value, until: t + SECRET_VALUE_TTL_MS });
    // A refusal or failure is this principal's (or the moment's): never cached.
    value.catch(() => {
      if (values.get(path)?.value === value) values.delete(path);
    });
    return value;
  }
  /** The last credential injected for each kv route (bounded by the routes), with the value it holds. */
  const injected = new Map<string, { route: ProxyRouteConfig; value: string; credential: InjectedCredential }>();
  const put = (route: ProxyRouteConfig, values: Readonly<Record<string, string>>, base: Omit<InjectedCredential, 'header' | 'query'>): InjectedCredential => {
    for (const v of Object.values(values)) if (UNSAFE.test(v)) throw unavailable(route.name, 'the value holds a control character (CR, LF, NUL …) that cannot go in a request');
    const value = fillFormat(formatOf(route.credential), values);
    if (route.credential.query !== undefined) return { ...base, query: { name: route.credential.query, value } };
    return { ...base, header: { name: (route.credential.header ?? 'authorization').toLowerCase(), value } };
  };
  return {
    async obtain(route, principal, where, signal) {
      const c = route.credential;
      const source = sourceOf(c);
      if (source === 'secret') {
        let value: string;
        try {
          value = await secretValue(c.secret!, principal, where);
        } catch (e) {
          if (isTesseraError(e) && e.status === 403) throw e; // the agent's own refusal (secret.inject)
          throw unavailable(route.name, isTesseraError(e) && e.code === 'TESSERA_SECRET_NOT_FOUND' ? `no kv secret at ${c.secret}` : 'the kv secret could not be read', e);
        }
        // The same value gives the same credential: formatted once, not per request.
        const last = injected.get(route.name);
        if (last && last.route === route && last.value === value) return last.credential;
        const label = `kv/${c.secret}`;
        const credential = Object.freeze(put(route, { value }, { secrets: Object.freeze([Object.freeze({ value, label })]), reference: label, source, secretPath: c.secret!, release: () => undefined }));
        injected.set(route.name, { route, value, credential });
        return credential;
      }
      if (source === 'lease') {
        const { engine, role, ttl } = c.lease!;
        let lease: { lease_id: string; data: Readonly<Record<string, unknown>> };
        try {
          lease = await issueAuthorized({ leases: deps.leases, authorizer: deps.authorizer }, { principal, engine, role, ...(ttl !== undefined ? { ttlMs: ttl } : {}), where });
        } catch (e) {
          if (isTesseraError(e) && e.status === 403) throw e; // cred.issue refused
          throw unavailable(route.name, `the ${engine}/${role} lease could not be issued`, e);
        }
        const username = String(lease.data['username'] ?? '');
        const password = String(lease.data['password'] ?? '');
        const release = (): void => void deps.leases.revoke(lease.lease_id, 'proxy.done', { principal }).catch(() => undefined);
        try {
          return put(route, { username, password }, { secrets: [{ value: password, label: `lease:${engine}/${role}` }, { value: username, label: `lease:${engine}/${role}` }], reference: `lease:${engine}/${role}`, source, release });
        } catch (e) {
          release();
          throw e;
        }
      }
      const tokens = deps.oauthSource?.(route.name);
      if (!tokens) throw unavailable(route.name, 'no OAuth client is set up for this route');
      let accessToken: string;
      try {
        accessToken = (await tokens.token(signal)).accessToken;
      } catch (e) {
        // The OAuth client's own code (TESSERA_PROXY_OAUTH_FAILED with the AS's `error`, …_UNREACHABLE) goes in details.cause.
        const err = unavailable(route.name, `the OAuth token endpoint did not issue a token${isTesseraError(e) ? ` (${e.code}${typeof e.details?.['error'] === 'string' ? `: ${e.details['error']}` : ''})` : ''}`, e);
        if (isTesseraError(e)) throw new TesseraError(err.code, err.message, { route: route.name, cause: e.code, ...(typeof e.details?.['error'] === 'string' ? { error: e.details['error'] } : {}) }, { cause: e });
        throw err;
      }
      return put(route, { access_token: accessToken }, { secrets: [{ value: accessToken, label: `oauth:${route.name}` }], reference: `oauth:${route.name}`, source, release: () => undefined });
    },
  };
}
