import { TesseraError, fail } from '../shared/errors.js';
import { isPathSegment, isTrustDomain, parseSpiffeId } from './spiffe-id.js';

/**
 * The SPIFFE ID template language of `jwt` attestors (docs/attestors.md#templates). Pure.
 *
 *   spiffe://{trust_domain}/ci/{claims.project_path|path}/{claims.ref}
 *
 * Rules, chosen so that no claim value can forge another workload's identity:
 *  - The authority is `{trust_domain}` (Tessera's trust domain) or that same name literally.
 *  - The first path segment is a literal (`ci`, `github`, …), never a placeholder and never
 *    `ns`, which belongs to `template: kubernetes` (`/ns/<namespace>/sa/<sa>`). So no claim value
 *    can yield an ID shaped like another attestor's; attestation also requires each templated
 *    attestor to use its own first segment (docs/adr/0021-identity-attributes.md).
 *  - Every path segment is either a literal valid segment or exactly ONE placeholder: a
 *    placeholder never shares a segment with text or another placeholder, because
 *    `{a}-{b}` would make `a="x-y",b="z"` and `a="x",b="y-z"` the same identity.
 *  - A substituted value must itself be one valid path segment (SPIFFE-ID §2.2: only
 *    `[A-Za-z0-9._-]`, not empty, not `.`/`..`). A value containing `/`, `%`, `..` or any
 *    other character is refused, never escaped or rewritten.
 *  - `|path` lets one placeholder span several segments (e.g. GitLab `project_path`
 *    `group/sub/project`); every resulting segment must still be valid. At most one `|path`
 *    placeholder per template, so the split between placeholders stays unambiguous.
 *  - Claim names are looked up in the token's claims; a dotted name walks nested objects,
 *    preferring the longest key that exists (`claims.kubernetes.io.namespace`).
 */
export interface CompiledTemplate {
  readonly source: string;
  /** Claim paths the template reads (for documentation and error messages). */
  readonly claims: readonly string[];
  /** `{trust_domain}`, or the literal trust domain the template names (it must be Tessera's own). */
  readonly authority: string;
  /** The literal first path segment (`ci` in `spiffe://{trust_domain}/ci/...`): this attestor's part of the ID space. */
  readonly prefix: string;
  render(input: { trustDomain: string; claims: Readonly<Record<string, unknown>> }): string;
}

type Part = { kind: 'literal'; value: string } | { kind: 'claim'; name: string; multi: boolean };

/** The first segment of every `template: kubernetes` identity; no other template may start with it. */
export const KUBERNETES_PREFIX = 'ns';

const PLACEHOLDER = /^\{claims\.([^{}|]+)(\|path)?\}$/;

export function compileTemplate(source: string, where = 'template'): CompiledTemplate {
  const bad = (why: string): TesseraError => fail('TESSERA_CONFIG_INVALID', `${where} ${JSON.stringify(source)}: ${why}`);
  if (!source.startsWith('spiffe://')) throw bad('must start with "spiffe://{trust_domain}/"');
  const rest = source.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  if (slash === -1) throw bad('needs a path after the trust domain, e.g. "spiffe://{trust_domain}/ci/{claims.sub}"');
  const authority = rest.slice(0, slash);
  if (authority !== '{trust_domain}' && !isTrustDomain(authority)) throw bad('the trust domain must be "{trust_domain}" or a literal trust domain name');
  const parts: Part[] = [];
  let multi = 0;
  for (const seg of rest.slice(slash + 1).split('/')) {
    const m = PLACEHOLDER.exec(seg);
    if (m) {
      const name = m[1] as string;
      if (!/^[A-Za-z0-9_.:-]+$/.test(name) || name.startsWith('.') || name.endsWith('.') || name.includes('..')) throw bad(`claim name ${JSON.stringify(name)} is not valid`);
      if (m[2]) multi++;
      parts.push({ kind: 'claim', name, multi: Boolean(m[2]) });
      continue;
    }
    if (seg.includes('{') || seg.includes('}')) {
      throw bad(`segment ${JSON.stringify(seg)}: a placeholder must be a whole path segment, "{claims.<name>}" or "{claims.<name>|path}"`);
    }
    if (!isPathSegment(seg)) throw bad(`segment ${JSON.stringify(seg)} is not a valid SPIFFE path segment (SPIFFE-ID §2.2)`);
    parts.push({ kind: 'literal', value: seg });
  }
  const first = parts[0];
  if (!first || first.kind !== 'literal') throw bad('the first path segment must be a literal such as "ci" or "github", so identities from this attestor cannot look like another attestor\'s');
  if (first.value === KUBERNETES_PREFIX) throw bad(`the first path segment "${KUBERNETES_PREFIX}" is reserved for \`template: kubernetes\` (spiffe://<trust_domain>/ns/<namespace>/sa/<service account>); choose another, e.g. "ci"`);
  if (multi > 1) throw bad('at most one "|path" placeholder is allowed, otherwise different claim values could map to the same SPIFFE ID');
  if (!parts.some((p) => p.kind === 'claim')) throw bad('must use at least one claim, otherwise every token maps to the same identity');

  return {
    source,
    authority,
    prefix: first.value,
    claims: parts.flatMap((p) => (p.kind === 'claim' ? [p.name] : [])),
    render({ trustDomain, claims }) {
      if (authority !== '{trust_domain}' && authority !== trustDomain) {
        throw fail('TESSERA_ATTEST_FAILED', `attestation failed (trust_domain): the template names trust domain "${authority}" but this server is "${trustDomain}"`, { check: 'trust_domain' });
      }
      const segments: string[] = [];
      for (const part of parts) {
        if (part.kind === 'literal') {
          segments.push(part.value);
          continue;
        }
        const raw = lookupClaim(claims, part.name);
        if (raw === undefined || raw === null || raw === '') {
          throw fail('TESSERA_ATTEST_CLAIM_MISSING', `the token has no "${part.name}" claim, which the SPIFFE ID template ${source} needs`, { claim: part.name });
        }
        if (typeof raw !== 'string' && !(typeof raw === 'number' && Number.isSafeInteger(raw))) {
          throw fail('TESSERA_ATTEST_FAILED', `attestation failed (claims): claim "${part.name}" must be a string to be used in a SPIFFE ID`, { check: 'claims', claim: part.name });
        }
        const value = String(raw);
        const pieces = part.multi ? value.split('/') : [value];
        for (const piece of pieces) {
          if (!isPathSegment(piece)) {
            throw fail(
              'TESSERA_ATTEST_FAILED',
              `attestation failed (spiffe_id): claim "${part.name}" does not form a valid SPIFFE ID path ${part.multi ? 'segments' : 'segment'}: ` +
                'only letters, digits, ".", "-" and "_" are allowed, and not "." or ".."' + (part.multi ? '' : ' (use "|path" in the template to allow "/")'),
              { check: 'spiffe_id', claim: part.name },
            );
          }
        }
        segments.push(...pieces);
      }
      const id = `spiffe://${trustDomain}/${segments.join('/')}`;
      try {
        return parseSpiffeId(id).id;
      } catch (e) {
        // Only the 2048-byte limit can still fail here; report it as an attestation failure.
        throw fail('TESSERA_ATTEST_FAILED', `attestation failed (spiffe_id): ${(e as Error).message}`, { check: 'spiffe_id' });
      }
    },
  };
}

/** Finds `a.b.c` in nested claims, preferring the longest existing key at each level (`kubernetes.io`). */
export function lookupClaim(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  const parts = name.split('.');
  let node: unknown = claims;
  let i = 0;
  // Bounded: each iteration consumes at least one part.
  while (i < parts.length) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) return undefined;
    let matched = false;
    for (let j = parts.length; j > i; j--) {
      const key = parts.slice(i, j).join('.');
      if (Object.hasOwn(node, key)) {
        node = (node as Record<string, unknown>)[key];
        i = j;
        matched = true;
        break;
      }
    }
    if (!matched) return undefined;
  }
  return node;
}
