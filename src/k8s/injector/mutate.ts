/**
 * `mutatePod(review, settings)`: the webhook's whole decision, pure (no I/O, no clock: nothing
 * here depends on time). Input: the parsed JSON body the API server sent; output: the
 * AdmissionReview to answer with, `allowed: true` with an RFC 6902 JSONPatch (base64, `patchType:
 * JSONPatch`), `allowed: true` without a patch (not ours to touch), or `allowed: false` with a
 * `status` naming the stable code (docs/k8s-injector.md "Refusals").
 *
 * The patch only ever adds (`add`): an absent array is added whole, an existing one is appended
 * to (`/-`), the sidecar is inserted at `/spec/initContainers/0` LAST, after the operations that
 * address init containers by their original index. Object keys in paths are escaped per RFC 6901
 * §3 (`~` → `~0`, `/` → `~1`).
 *
 * Throws ReviewError(TESSERA_INJECTOR_REVIEW_INVALID) without a uid when the body is not an
 * AdmissionReview at all (the caller answers 400); every other refusal is an AdmissionReview.
 */
import { posix } from 'node:path';
import { TesseraError, fail } from '../../shared/errors.js';
import { ANNOTATIONS, parseAnnotations, shown, type InjectionRequest } from './annotations.js';
import { ENV, envFor, mountsFor, sidecarContainer, volumesFor, NAMES, PATHS, SIDECAR, type EnvVar, type InjectorSettings, type Mount } from './inject.js';
import { allow, deny, isPodCreate, parsePod, parseReview, ReviewError, type AddOperation, type AdmissionRequest, type AdmissionReviewResponse, type Container, type Pod } from './review.js';

/** RFC 6901 §3: a reference token with `~` and `/` escaped. */
export function pointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Istio's injected sidecar (Envoy binds 0.0.0.0:15001 in the pod: istio.io "Ports used by Istio"). */
const ISTIO_PROXY = 'istio-proxy';

/** Variables a pod must never carry itself: a static Tessera credential. */
const STATIC_TESSERA: readonly string[] = [ENV.token];

export function mutatePod(body: unknown, settings: InjectorSettings): AdmissionReviewResponse {
  let req: AdmissionRequest;
  try {
    req = parseReview(body);
  } catch (e) {
    if (e instanceof ReviewError && e.uid !== undefined) return deny(e.uid, e);
    throw e;
  }
  try {
    return admit(req, settings);
  } catch (e) {
    if (e instanceof TesseraError) return deny(req.uid, e);
    throw e;
  }
}

function admit(req: AdmissionRequest, s: InjectorSettings): AdmissionReviewResponse {
  if (!isPodCreate(req)) return allow(req.uid); // UPDATE, DELETE, CONNECT, subresources, other kinds
  const pod = parsePod(req);
  const namespace = req.namespace ?? pod.metadata.namespace;
  if (!namespace) throw new ReviewError('TESSERA_INJECTOR_REVIEW_INVALID', 'request.namespace: a Pod is created in a namespace, none was given', req.uid);
  if (s.exclude_namespaces.includes(namespace)) return allow(req.uid);
  const want = parseAnnotations(pod.metadata.annotations ?? {});
  const who = podName(pod, namespace);
  if (want.injected !== undefined) {
    // Never injected twice, whoever wrote the marker; but a marker without what the injector adds
    // skipped every check (a static TESSERA_TOKEN stays) and leaves the pod without its token: said.
    const forged = !(pod.spec.volumes ?? []).some((v) => v.name === NAMES.tokenVolume);
    return allow(req.uid, undefined, forged ? [`tessera: pod ${who} carries ${ANNOTATIONS.injected} without the ${NAMES.tokenVolume} volume the injector adds: nothing was injected or checked; remove the annotation (only the injector writes it)`] : []);
  }
  if (!want.inject) return allow(req.uid);
  if (want.agent && pod.spec.hostNetwork === true) {
    throw fail('TESSERA_INJECTOR_HOST_NETWORK', `pod ${who} has hostNetwork: true: the sidecar's 127.0.0.1 listeners would be the node's, open to every process on it; run the agent without hostNetwork or without ${ANNOTATIONS.agent}`);
  }
  const all = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])];
  if (want.agent && all.some((c) => c.name === ISTIO_PROXY)) {
    throw fail('TESSERA_INJECTOR_PORT_CONFLICT', `pod ${who} has Istio's ${ISTIO_PROXY}, whose outbound listener is 0.0.0.0:${SIDECAR.proxyPort}, the port of the sidecar's local proxy: one of the two could not start. Drop ${ANNOTATIONS.agent} (token-only injection works with Istio) or Istio's sidecar for this pod`);
  }
  checkNames(pod, want, who);
  return allow(req.uid, patchOps(pod, want, s, who), warnings(pod, want, s));
}

function podName(pod: Pod, namespace: string): string {
  const name = pod.metadata.name || (pod.metadata.generateName ? `${pod.metadata.generateName}<generated>` : '<unnamed>');
  return shown(`${namespace}/${name}`, 128);
}

/** Our volume, container and mount names must be free (no rename: a pod spec must mean what it says). */
function checkNames(pod: Pod, want: InjectionRequest, who: string): void {
  const ourVolumes = new Set<string>([NAMES.tokenVolume, NAMES.runVolume, NAMES.caVolume]);
  for (const v of pod.spec.volumes ?? []) {
    if (ourVolumes.has(v.name)) throw fail('TESSERA_INJECTOR_NAME_CONFLICT', `pod ${who} already has a volume named ${shown(v.name)}, a name the injector uses; rename it`);
  }
  const all = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])];
  if (all.some((c) => c.name === NAMES.sidecar)) throw fail('TESSERA_INJECTOR_NAME_CONFLICT', `pod ${who} already has a container named ${NAMES.sidecar}, the injected sidecar's name; rename it`);
  for (const c of all) {
    for (const m of c.volumeMounts ?? []) {
      // Inside our directories too: a runtime mounts the deeper path over ours (a Secret with subPath at …/token).
      if (underOurs(m.mountPath)) throw fail('TESSERA_INJECTOR_NAME_CONFLICT', `container ${shown(c.name)} of pod ${who} already mounts something at ${shown(m.mountPath)}, where the injector mounts ${want.caBundle ? 'the token or the CA bundle' : 'the token'}; move it`);
      // A mount of a volume the pod does not define would resolve to ours once injected (the sidecar's tessera-run, read-write).
      if (ourVolumes.has(m.name)) throw fail('TESSERA_INJECTOR_NAME_CONFLICT', `container ${shown(c.name)} of pod ${who} mounts the volume ${shown(m.name)}, which the injector adds for ${m.name === NAMES.runVolume ? 'the sidecar alone' : 'its own mounts'}; remove that mount`);
    }
  }
}

/** The mount path, normalised (`//`, `/./`, trailing `/`), is one of the injector's directories or inside one. */
function underOurs(mountPath: string): boolean {
  const p = posix.normalize(mountPath).replace(/\/+$/, '');
  return [PATHS.tokenDir, PATHS.caDir, PATHS.runDir].some((dir) => p === dir || p.startsWith(`${dir}/`));
}

/** Refuses a container that already sets one of `ours` or a static Tessera token (value, valueFrom, or empty). */
function checkEnv(c: Container, ours: readonly EnvVar[], who: string): void {
  const names = new Set([...ours.map((e) => e.name), ...STATIC_TESSERA]);
  for (const e of c.env ?? []) {
    if (!names.has(e.name)) continue;
    const how = 'valueFrom' in e && e.valueFrom !== undefined ? 'valueFrom' : 'a value';
    const what = STATIC_TESSERA.includes(e.name)
      ? `sets ${e.name} (${how}): a static Tessera token; the injected projected token replaces it`
      : `already sets ${e.name} (${how}), which the injector sets; a static value would keep a credential or route around the injected one`;
    throw fail('TESSERA_INJECTOR_STATIC_CREDENTIAL', `container ${shown(c.name)} of pod ${who} ${what}. Remove it from the pod spec`);
  }
}

/** `add` of `items` to the array at `path`: the whole array when absent, else one `/-` per item. */
function addAll(ops: AddOperation[], path: string, existing: readonly unknown[] | null | undefined, items: readonly unknown[]): void {
  if (items.length === 0) return;
  if (!existing) ops.push({ op: 'add', path, value: [...items] });
  else for (const v of items) ops.push({ op: 'add', path: `${path}/-`, value: v });
}

function addToContainer(ops: AddOperation[], base: string, c: Container, env: readonly EnvVar[], mounts: readonly Mount[]): void {
  addAll(ops, `${base}/env`, c.env, env);
  addAll(ops, `${base}/volumeMounts`, c.volumeMounts, mounts);
}

function patchOps(pod: Pod, want: InjectionRequest, s: InjectorSettings, who: string): AddOperation[] {
  const ops: AddOperation[] = [];
  const appEnv = envFor(want, s, false);
  const initEnv = envFor(want, s, true);
  const mounts = mountsFor(want);
  pod.spec.containers.forEach((c) => checkEnv(c, appEnv, who));
  (pod.spec.initContainers ?? []).forEach((c) => checkEnv(c, initEnv, who));

  ops.push({ op: 'add', path: `/metadata/annotations/${pointerToken(ANNOTATIONS.injected)}`, value: s.version });
  addAll(ops, '/spec/volumes', pod.spec.volumes, volumesFor(want, s));
  pod.spec.containers.forEach((c, i) => addToContainer(ops, `/spec/containers/${i}`, c, appEnv, mounts));
  (pod.spec.initContainers ?? []).forEach((c, i) => addToContainer(ops, `/spec/initContainers/${i}`, c, initEnv, mounts));
  if (want.agent) {
    const sidecar = sidecarContainer(want, s);
    if (!s.native_sidecar) ops.push({ op: 'add', path: '/spec/containers/-', value: sidecar });
    else if (!pod.spec.initContainers) ops.push({ op: 'add', path: '/spec/initContainers', value: [sidecar] });
    else ops.push({ op: 'add', path: '/spec/initContainers/0', value: sidecar }); // first: it starts before the others
  }
  return ops;
}

/** AdmissionResponse `warnings` (kubectl prints them): facts a pod author should know. */
function warnings(pod: Pod, want: InjectionRequest, s: InjectorSettings): string[] {
  const out: string[] = [];
  const sa = pod.spec.serviceAccountName;
  if (!sa || sa === 'default') out.push('tessera: the pod uses the namespace\'s default service account; every pod using it has the same identity in Tessera');
  for (const c of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) {
    const secrets = (c.envFrom ?? []).filter((f) => f.secretRef !== undefined && f.secretRef !== null);
    if (secrets.length > 0) out.push(`tessera: container ${shown(c.name)} takes variables from a Secret (envFrom): the injector cannot see whether it holds ${ENV.token} or another static credential; the injected variables take precedence over envFrom`);
  }
  if (want.agent && pod.spec.shareProcessNamespace === true) out.push('tessera: shareProcessNamespace is true: the app containers can read the sidecar\'s memory and files through /proc when they run as its user (65532); the agent token is then as exposed as the pod\'s projected token');
  if (want.agent && !s.native_sidecar) out.push('tessera: the sidecar is a regular container (native_sidecar: false); the app may start before it is ready and must retry');
  return out;
}
