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
import type { RequestAuthorizer } from '../pipeline/authorize.js';
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

export function createCredentialProvider(deps: CredentialDeps): CredentialProvider {
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
          value = (await deps.kv.resolveForInjection(principal, c.secret!, deps.authorizer, where)).value;
        } catch (e) {
          if (isTesseraError(e) && e.status === 403) throw e; // the agent's own refusal (secret.inject)
          throw unavailable(route.name, isTesseraError(e) && e.code === 'TESSERA_SECRET_NOT_FOUND' ? `no kv secret at ${c.secret}` : 'the kv secret could not be read', e);
        }
        const label = `kv/${c.secret}`;
        return put(route, { value }, { secrets: [{ value, label }], reference: label, source, secretPath: c.secret!, release: () => undefined });
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
        throw unavailable(route.name, 'the OAuth token endpoint did not issue a token', e);
      }
      return put(route, { access_token: accessToken }, { secrets: [{ value: accessToken, label: `oauth:${route.name}` }], reference: `oauth:${route.name}`, source, release: () => undefined });
    },
  };
}
