/**
 * `kubernetes.injector` (docs/k8s-injector.md, docs/configuration.md "The kubernetes.injector
 * section"): the mutating admission webhook `tessera injector`. Every key has a default, so a
 * configuration without the section still parses; `tessera injector` reads only this section.
 */
import { z } from 'zod';
import { durationBetween } from '../../config/fields.js';
import { VERSION } from '../../shared/package.js';

const MINUTE = 60_000;

/** host:port, as `server.listen`. */
const listen = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 0.0.0.0:8443');

/** An http(s) URL without credentials, query or fragment: it is written into every injected pod. */
const baseUrl = z.url({ protocol: /^https?$/ }).refine((u) => {
  const url = new URL(u);
  return url.username === '' && url.password === '' && url.search === '' && url.hash === '';
}, 'expected an http(s) URL without user, password, query or fragment, e.g. http://tessera.tessera.svc:8200');

/** A Kubernetes resource quantity (apimachinery resource.Quantity): `10m`, `0.5`, `64Mi`, `1G`. */
const quantity = z.string().regex(/^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$/, 'expected a Kubernetes quantity such as "50m", "64Mi" or "1"');

const cpuMemory = (defaults: { cpu?: string; memory?: string }) =>
  z.object({
    cpu: defaults.cpu !== undefined ? quantity.default(defaults.cpu) : quantity.optional(),
    memory: defaults.memory !== undefined ? quantity.default(defaults.memory) : quantity.optional(),
  }).strict().prefault({});

/**
 * A Kubernetes namespace name (RFC 1123 label, ≤ 63): `exclude_namespaces` entries. A typo here
 * would silently inject into a namespace meant to be left alone, so malformed names are refused.
 */
const namespaceName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a namespace name (lowercase letters, digits and "-", at most 63)');

/** A `NO_PROXY` entry: a host, a domain suffix (`.svc`), an IP or a CIDR; no separators or spaces. */
const noProxyEntry = z.string().regex(/^[A-Za-z0-9.:*/\-[\]]{1,253}$/, 'expected a host, ".domain", an IP address or a CIDR');

/** The image this version of Tessera ships as (H1's default, docs/kubernetes.md). */
export const DEFAULT_IMAGE = `ghcr.io/tessera-broker/tessera:${VERSION}`;

export const injectorConfigSchema = z.object({
  /** Where the webhook listens (HTTPS). The Service `tessera-injector` maps 443 → 8443. */
  listen: listen.default('0.0.0.0:8443'),
  /** PEM certificate (chain) and key of the webhook; cert-manager's Secret `tessera-injector-tls` mounted here. */
  tls_cert_file: z.string().min(1).default('/etc/tessera/injector-tls/tls.crt'),
  tls_key_file: z.string().min(1).default('/etc/tessera/injector-tls/tls.key'),
  /** How often the certificate files are checked for a change (cert-manager rotates them in place). */
  tls_reload_interval: durationBetween(100, 60 * MINUTE).prefault('10s'),
  /** Tessera's API as the pods reach it (`TESSERA_ADDR`, the sidecar's `--addr`). */
  tessera_addr: baseUrl.default('http://tessera.tessera.svc:8200'),
  /** Tessera's injection proxy as the sidecar reaches it (`--proxy-url`). */
  proxy_url: baseUrl.default('http://tessera.tessera.svc:8201'),
  /** `audience` of the projected service-account token: the jwt attestor's `audience`. */
  audience: z.string().regex(/^[\x21-\x7e]{1,253}$/, 'expected 1 to 253 printable ASCII characters without spaces').default('tessera'),
  /** `expirationSeconds` of the projected token; 10 minutes is the Kubernetes API's minimum. */
  token_expiration: durationBetween(10 * MINUTE, 24 * 60 * MINUTE).prefault('10m'),
  /** The sidecar's image (`tessera agent`). */
  image: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._\-/:@]{0,254}$/, 'expected an image reference such as ghcr.io/tessera-broker/tessera:0.1.0').default(DEFAULT_IMAGE),
  /**
   * The argv that runs `tessera` in that image (its ENTRYPOINT): the sidecar's startup probe
   * execs it with `agent probe --port 15002` (no shell in the image). Default: Tessera's image.
   */
  image_command: z.array(z.string().regex(/^[\x21-\x7e]{1,255}$/, 'expected a path or word without spaces')).min(1).max(8).default(['/nodejs/bin/node', '/app/bin/tessera.js']),
  image_pull_policy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
  /** The sidecar as a native sidecar (an initContainer with `restartPolicy: Always`, Kubernetes ≥ 1.29); false: a regular container. */
  native_sidecar: z.boolean().default(true),
  /** Namespaces the webhook never mutates, whatever the annotations say (besides the webhook's namespaceSelector). */
  exclude_namespaces: z.array(namespaceName).max(256).default(['kube-system', 'kube-public', 'kube-node-lease']),
  /** `NO_PROXY`/`no_proxy` given with `tessera.io/proxy`: what the app reaches directly. */
  no_proxy: z.array(noProxyEntry).max(64).default(['localhost', '127.0.0.1', '::1', '.svc', '.cluster.local']),
  /** The sidecar's resources (`requests`, `limits`). */
  resources: z.object({
    requests: cpuMemory({ cpu: '10m', memory: '48Mi' }),
    limits: cpuMemory({ memory: '128Mi' }),
  }).strict().prefault({}),
}).strict();

export type InjectorConfig = z.output<typeof injectorConfigSchema>;
