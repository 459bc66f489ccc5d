/**
 * AdmissionReview `admission.k8s.io/v1` (pure): the request the API server sends to a mutating
 * webhook and the response it expects (Kubernetes "Dynamic Admission Control", "Request" and
 * "Response"; k8s.io/api/admission/v1 types.go). Only the fields the injector reads are
 * checked; everything else in the Pod is kept as sent (the patch touches only what it adds).
 *
 * Errors: TESSERA_INJECTOR_REVIEW_INVALID (with the uid when it could be read, so the caller
 * can still answer with an AdmissionReview denial).
 */
import { z } from 'zod';
import { TesseraError, type ErrorCode } from '../../shared/errors.js';

export const API_VERSION = 'admission.k8s.io/v1';
export const KIND = 'AdmissionReview';

const groupVersionKind = z.looseObject({ group: z.string(), version: z.string(), kind: z.string() });
const groupVersionResource = z.looseObject({ group: z.string(), version: z.string(), resource: z.string() });

/** The envelope and the request's routing fields; `object` is checked separately (only for pod CREATE). */
const reviewSchema = z.looseObject({
  apiVersion: z.literal(API_VERSION, { error: `apiVersion must be "${API_VERSION}" (set admissionReviewVersions: [v1] in the MutatingWebhookConfiguration)` }),
  kind: z.literal(KIND, { error: `kind must be "${KIND}"` }),
  request: z.looseObject({
    uid: z.string().min(1).max(128),
    kind: groupVersionKind,
    resource: groupVersionResource,
    subResource: z.string().optional(),
    operation: z.string(),
    namespace: z.string().max(63).optional(),
    name: z.string().optional(),
    dryRun: z.boolean().optional(),
    object: z.unknown().optional(),
  }),
});

export type AdmissionRequest = z.output<typeof reviewSchema>['request'];

const envVar = z.looseObject({ name: z.string() });
const volumeMount = z.looseObject({ name: z.string(), mountPath: z.string() });
const container = z.looseObject({
  name: z.string().min(1),
  env: z.array(envVar).nullish(),
  volumeMounts: z.array(volumeMount).nullish(),
  envFrom: z.array(z.looseObject({ secretRef: z.unknown().optional() })).nullish(),
});

/** The parts of a Pod the injector reads (core/v1 Pod). */
const podSchema = z.looseObject({
  apiVersion: z.literal('v1').optional(),
  kind: z.literal('Pod', { error: 'request.object.kind must be "Pod"' }).optional(),
  metadata: z.looseObject({
    name: z.string().optional(),
    generateName: z.string().optional(),
    namespace: z.string().optional(),
    annotations: z.record(z.string(), z.string()).nullish(),
  }),
  spec: z.looseObject({
    containers: z.array(container).min(1),
    initContainers: z.array(container).nullish(),
    volumes: z.array(z.looseObject({ name: z.string() })).nullish(),
    hostNetwork: z.boolean().nullish(),
    shareProcessNamespace: z.boolean().nullish(),
    serviceAccountName: z.string().nullish(),
    automountServiceAccountToken: z.boolean().nullish(),
  }),
});

export type Pod = z.output<typeof podSchema>;
export type Container = z.output<typeof container>;

/** A refusal that may carry the request uid (then it is answered as an AdmissionReview). */
export class ReviewError extends TesseraError {
  readonly uid: string | undefined;
  constructor(code: ErrorCode, message: string, uid: string | undefined) {
    super(code, message);
    this.uid = uid;
  }
}

function issueText(e: z.ZodError, root: string): string {
  const i = e.issues[0]!;
  const path = [root, ...i.path.map(String)].filter(Boolean).join('.');
  return `${path || '(top level)'}: ${i.message}`;
}

/** The uid, if the body has a usable one, whatever else is wrong with it. */
function uidOf(body: unknown): string | undefined {
  const uid = (body as { request?: { uid?: unknown } } | null)?.request?.uid;
  return typeof uid === 'string' && uid.length > 0 && uid.length <= 128 ? uid : undefined;
}

/** Checks the envelope; throws ReviewError(TESSERA_INJECTOR_REVIEW_INVALID) naming the field. */
export function parseReview(body: unknown): AdmissionRequest {
  const r = reviewSchema.safeParse(body);
  if (!r.success) throw new ReviewError('TESSERA_INJECTOR_REVIEW_INVALID', `not an AdmissionReview: ${issueText(r.error, '')}`, uidOf(body));
  return r.data.request;
}

/** True when the request is the creation of a Pod (not a subresource): the only thing mutated. */
export function isPodCreate(req: AdmissionRequest): boolean {
  return req.operation === 'CREATE' && req.kind.group === '' && req.kind.kind === 'Pod' && req.resource.resource === 'pods' && !req.subResource;
}

/** The Pod of a pod CREATE; throws ReviewError(TESSERA_INJECTOR_REVIEW_INVALID) naming the field. */
export function parsePod(req: AdmissionRequest): Pod {
  if (req.object === null || typeof req.object !== 'object' || Array.isArray(req.object)) {
    throw new ReviewError('TESSERA_INJECTOR_REVIEW_INVALID', 'request.object must be the Pod being created', req.uid);
  }
  const r = podSchema.safeParse(req.object);
  if (!r.success) throw new ReviewError('TESSERA_INJECTOR_REVIEW_INVALID', `request.object is not a Pod: ${issueText(r.error, 'request.object')}`, req.uid);
  return r.data;
}

/** RFC 6902 operations as the injector emits them (only `add`). */
export interface AddOperation {
  readonly op: 'add';
  readonly path: string;
  readonly value: unknown;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  /** base64 of the JSON array of operations. */
  readonly patch?: string;
  readonly status?: { readonly code: number; readonly message: string };
  readonly warnings?: readonly string[];
}

export interface AdmissionReviewResponse {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: typeof KIND;
  readonly response: AdmissionResponse;
}

export function allow(uid: string, ops?: readonly AddOperation[], warnings: readonly string[] = []): AdmissionReviewResponse {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    response: {
      uid,
      allowed: true,
      ...(ops && ops.length > 0 ? { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(ops)).toString('base64') } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
    },
  };
}

/**
 * A denial: `status.code` is the error's HTTP status, the message ends with the stable code so
 * that `kubectl` shows it (`admission webhook "…" denied the request: … [TESSERA_INJECTOR_…]`).
 */
export function deny(uid: string, e: TesseraError): AdmissionReviewResponse {
  return { apiVersion: API_VERSION, kind: KIND, response: { uid, allowed: false, status: { code: e.status, message: `tessera injector: ${e.message} [${e.code}]` } } };
}
