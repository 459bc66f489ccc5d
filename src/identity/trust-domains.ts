import { fail } from '../shared/errors.js';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.js';

/**
 * The trust domains a Tessera serves (docs/attestors.md#trust-domains). Pure.
 *
 * - `own`: tessera.yaml `trust_domain`. Join tokens and `jwt` attestors (Kubernetes and templates)
 *   only ever yield identities here.
 * - `federated`: the `trust_domain` of each `spiffe` attestor. A JWT-SVID of such a domain keeps
 *   its own SPIFFE ID (SPIFFE federation: IDs are never rewritten into another domain), so these
 *   domains are accepted too — but only because the operator configured that attestor.
 *
 * Every path that issues or accepts an identity asks `accepts` (login, token issuance, token
 * verification, join-token creation, agent revocation); anything else is refused.
 */
export interface TrustDomains {
  readonly own: string;
  readonly federated: ReadonlySet<string>;
  /** True for `own` and every federated domain. */
  accepts(trustDomain: string): boolean;
  /** Every accepted domain, `own` first (for messages). */
  list(): readonly string[];
}

export function createTrustDomains(own: string, federated: Iterable<string> = []): TrustDomains {
  const fed = new Set(federated);
  const all = [own, ...[...fed].filter((d) => d !== own).sort()];
  return {
    own,
    federated: fed,
    accepts: (td) => td === own || fed.has(td),
    list: () => all,
  };
}

/** From the configuration: `trust_domain` plus every `spiffe` attestor's `trust_domain`. */
export function trustDomainsOf(config: { trust_domain: string; attestors: readonly { kind: string; trust_domain?: string }[] }): TrustDomains {
  return createTrustDomains(
    config.trust_domain,
    config.attestors.flatMap((a) => (a.kind === 'spiffe' && typeof a.trust_domain === 'string' ? [a.trust_domain] : [])),
  );
}

/**
 * Parses `spiffeId` and requires its trust domain to be accepted (or, with `ownOnly`, to be
 * Tessera's own). Throws TESSERA_SPIFFE_ID_INVALID for a malformed ID and
 * TESSERA_TRUST_DOMAIN_UNKNOWN for a foreign trust domain.
 */
export function requireServedSpiffeId(domains: Pick<TrustDomains, 'own' | 'accepts' | 'list'>, spiffeId: unknown, what: string, options: { ownOnly?: boolean } = {}): SpiffeId {
  const id = parseSpiffeId(spiffeId, what);
  const ok = options.ownOnly ? id.trustDomain === domains.own : domains.accepts(id.trustDomain);
  if (!ok) {
    const allowed = options.ownOnly ? [domains.own] : domains.list();
    throw fail(
      'TESSERA_TRUST_DOMAIN_UNKNOWN',
      `${what} is in trust domain "${id.trustDomain}", which this Tessera does not serve; use ${allowed.map((d) => `"${d}"`).join(' or ')}` +
        (options.ownOnly ? '' : ' (a foreign trust domain is served only through a `kind: spiffe` attestor for it)'),
      { trust_domain: id.trustDomain, allowed },
    );
  }
  return id;
}
