/**
 * The Tessera replacement suggested for each finding (docs/k8s-scan.md "Suggestions"): which
 * Tessera mechanism takes the static credential's place, the kv path it would live at, the
 * annotations the pod needs, and the page that explains it. Pure.
 */
import { isDatabaseName, vendorOfName, type KeyShape } from './credentials.js';

export type Replacement = 'proxy-route' | 'postgres-lease' | 'gateway-tool' | 'tessera-identity' | 'workload-identity' | 'short-lived-certificate' | 'rotate-into-kv' | 'network-policy';

export interface Suggestion {
  readonly replacement: Replacement;
  readonly text: string;
  readonly docs: string;
  /** The kv path the secret would move to (`tessera kv put <path> -`). */
  readonly kv_path?: string;
  /** Pod annotations for the injector (docs/k8s-injector.md). */
  readonly annotations?: Readonly<Record<string, string>>;
}

const PROXY_ANNOTATIONS = { 'tessera.io/inject': 'true', 'tessera.io/agent': 'true', 'tessera.io/proxy': 'true' } as const;
const AGENT_ANNOTATIONS = { 'tessera.io/inject': 'true', 'tessera.io/agent': 'true' } as const;

/** Well-known upstreams for a suggested route (docs/proxy-providers.md has presets for the model providers). */
const UPSTREAMS: Readonly<Record<string, string>> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com',
  github: 'https://api.github.com',
  gitlab: 'https://gitlab.com/api/v4',
  slack: 'https://slack.com/api',
  stripe: 'https://api.stripe.com',
  huggingface: 'https://huggingface.co',
  google: 'https://generativelanguage.googleapis.com',
  mistral: 'https://api.mistral.ai',
  cohere: 'https://api.cohere.com',
  groq: 'https://api.groq.com/openai/v1',
};

const SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;

/** A kv path from name parts (docs/secrets.md rules), or undefined when a part cannot be a segment. */
export function kvPathOf(...parts: string[]): string | undefined {
  const segs = parts.map((p) => p.toLowerCase().replace(/_/g, '-'));
  return segs.every((s) => SEGMENT.test(s) && s !== '.' && s !== '..') ? segs.join('/') : undefined;
}

/** What replaces a static credential named `name` (a variable, a Secret key or a Secret) of format `shape`. */
export function suggestFor(name: string, shape: KeyShape | undefined, kvPath: string | undefined): Suggestion {
  const kv = kvPath ? { kv_path: kvPath } : {};
  const where = kvPath ? `kv secret \`${kvPath}\`` : 'a kv secret';
  const vendor = shape?.vendor ?? vendorOfName(name);
  if (shape?.id === 'tessera-token' || shape?.id === 'jwt') {
    return { replacement: 'tessera-identity', text: `a bearer token in the pod: let the pod log in as itself instead — annotate it tessera.io/inject and tessera.io/agent: the injector gives it a projected service-account token for Tessera and the sidecar keeps a short-lived agent token fresh in memory`, docs: 'docs/k8s-injector.md', annotations: AGENT_ANNOTATIONS };
  }
  if (vendor === 'aws') {
    return { replacement: 'workload-identity', text: `an AWS key: AWS signs each request (SigV4), so no proxy can add it as a header and Tessera has no AWS engine — use IRSA or EKS Pod Identity (short-lived, nothing static), or keep the key in ${where} behind a gateway http tool`, docs: 'docs/gateway-tools.md', ...kv };
  }
  if (shape?.vendor === 'database' || isDatabaseName(name)) {
    if (/postgres|^pg|_pg|psql/i.test(name) || /^postgres/i.test(shape?.label ?? '') || (shape?.vendor === 'database' && !/mysql|maria|mongo|redis/i.test(name))) {
      return { replacement: 'postgres-lease', text: `a database password: a dynamic PostgreSQL lease per agent instead (engine postgres role; \`tessera creds postgres <role>\`, or a gateway postgres tool that uses the lease for the agent), revoked when the lease or the pod ends`, docs: 'docs/engine-postgres.md', annotations: AGENT_ANNOTATIONS };
    }
    return { replacement: 'gateway-tool', text: `a database credential: Tessera's dynamic engine is PostgreSQL only, so keep it in ${where} and let a gateway tool use it for the agent`, docs: 'docs/gateway-tools.md', ...kv, annotations: AGENT_ANNOTATIONS };
  }
  if (shape?.id === 'pem-private-key') {
    return { replacement: 'gateway-tool', text: `a private key: keep it in ${where} and let a gateway tool or a proxy route use it for the agent; the key never enters the pod`, docs: 'docs/gateway-tools.md', ...kv, annotations: AGENT_ANNOTATIONS };
  }
  const route = vendor && UPSTREAMS[vendor] ? ` (route \`${vendor}\`, upstream ${UPSTREAMS[vendor]})` : '';
  return {
    replacement: 'proxy-route',
    text: `a proxy route${route} with ${where} injected (\`credential.secret\`); annotate the pod tessera.io/proxy (with inject and agent) and remove the variable or volume — the agent calls the API through HTTPS_PROXY without a key`,
    docs: 'docs/proxy.md',
    ...kv,
    annotations: PROXY_ANNOTATIONS,
  };
}

/** A `kubernetes.io/tls` Secret: a key pair, which no Tessera route presents for an agent. */
export function suggestCertificate(): Suggestion {
  return {
    replacement: 'short-lived-certificate',
    text: 'a TLS key pair: Tessera does not present client certificates for agents, so if this is the agent\'s own certificate issue it short-lived and renewed (cert-manager, SPIFFE/SPIRE) instead of a static Secret; if it authenticates to an API that also takes a token, use a proxy route',
    docs: 'docs/proxy.md',
  };
}

/** A value from a Secret whose names do not look like a credential: say what to do if it is one. */
export function maybeCredential(s: Suggestion): Suggestion {
  return { ...s, text: `if it is a credential: ${s.text}; if not, a ConfigMap` };
}

export function suggestRotation(kvPath: string | undefined): Suggestion {
  return {
    replacement: 'rotate-into-kv',
    text: `rotate it now, then move it into Tessera (${kvPath ? `kv \`${kvPath}\`` : 'kv'}): a new version is served by the proxy and the gateway within a second, with no pod restart`,
    docs: 'docs/secrets.md',
    ...(kvPath ? { kv_path: kvPath } : {}),
  };
}

export function suggestEgress(tesseraNamespace: string): Suggestion {
  return {
    replacement: 'network-policy',
    text: `a NetworkPolicy selecting this pod with policyTypes [Egress] that allows only Tessera (namespace ${tesseraNamespace}, ports 8200 and 8201) and DNS; the agent reaches APIs through the Tessera proxy`,
    docs: 'docs/k8s-scan.md',
  };
}
