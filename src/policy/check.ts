import { z } from 'zod';
import { fail } from '../shared/errors.js';
import { ATTESTOR_KINDS, KUBERNETES_ATTRIBUTES, type AgentPrincipal } from '../shared/principal.js';
import { parseResourceRef } from './entities.js';
import { POLICY_ACTIONS, type PolicyRequest, type ResourceRef } from './types.js';

/** SPIFFE ID: `spiffe://<trust domain>/<path>` (SPIFFE ID specification §2.1, §2.2). */
const SPIFFE_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)*)$/;

const name = z.string().min(1).max(512);

const resourceObject = z.discriminatedUnion('type', [
  z.object({ type: z.literal('Secret'), path: name }).strict(),
  z.object({ type: z.literal('Role'), engine: name, role: name }).strict(),
  z.object({ type: z.literal('Tool'), server: name, tool: name }).strict(),
  z.object({ type: z.literal('Route'), route: name }).strict(),
  z.object({ type: z.literal('Resource'), server: name, uri: z.string().min(1).max(2048) }).strict(),
  z.object({ type: z.literal('Prompt'), server: name, prompt: name }).strict(),
  z.object({ type: z.literal('Agent'), spiffe_id: z.string().regex(SPIFFE_ID, 'a SPIFFE ID') }).strict(),
]);

/** The body of `POST /v1/admin/policy/check` and one case of a `tessera policy test` table. */
export const checkRequestSchema = z
  .object({
    principal: z
      .object({
        spiffe_id: z.string().max(2048).regex(SPIFFE_ID, 'a SPIFFE ID such as spiffe://example.org/ns/prod/sa/reader'),
        attributes: z.record(z.string().max(256), z.string().max(1024)).optional(),
        /** The attestor that would have proven the identity (its tessera.yaml name) and its kind. */
        attestor: z.string().min(1).max(128).optional(),
        attestor_kind: z.enum(ATTESTOR_KINDS).optional(),
        scope: z.array(z.string().max(512)).max(64).optional(),
        task: z.string().max(256).optional(),
        chain: z.array(z.string().max(2048)).max(32).optional(),
        user: z.string().max(256).optional(),
        purpose: z.string().max(1024).optional(),
        /** The token would be DPoP-bound (policy sees `context.dpop`). */
        dpop: z.boolean().optional(),
      })
      .strict(),
    action: z.enum(POLICY_ACTIONS),
    resource: z.union([z.string().min(3).max(2048), resourceObject]),
    context: z.object({
      args: z.record(z.string(), z.unknown()).optional(),
      /** http.request: the proxied request (src/proxy; docs/proxy.md). */
      http: z.object({
        route: z.string().max(253), method: z.string().max(32), host: z.string().max(253), port: z.number().int().min(0).max(65535), path: z.string().max(8192),
        query_keys: z.array(z.string().max(256)).max(256).default([]), body: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}), tunnel: z.boolean().default(false),
      }).strict().optional(),
    }).strict().optional(),
  })
  .strict();

export type CheckRequest = z.output<typeof checkRequestSchema>;

/** A what-if principal: the fields a token would carry, without a token. */
export function toPolicyRequest(body: CheckRequest): PolicyRequest {
  const m = SPIFFE_ID.exec(body.principal.spiffe_id);
  if (!m) throw fail('TESSERA_POLICY_REQUEST_INVALID', `principal.spiffe_id "${body.principal.spiffe_id}" is not a SPIFFE ID`);
  const p = body.principal;
  // Say it rather than silently ignore it: policy sees Kubernetes attributes only from a
  // kubernetes attestor, so a what-if must name that kind to use them (ADR 0021).
  const k8sAttr = KUBERNETES_ATTRIBUTES.find((k) => p.attributes && k in p.attributes);
  if (k8sAttr && p.attestor_kind !== 'kubernetes') {
    throw fail('TESSERA_POLICY_REQUEST_INVALID', `principal.attributes.${k8sAttr} is only proven by a Kubernetes attestor: add "attestor_kind": "kubernetes" (and "attestor": "<its name>"), or drop the attribute`);
  }
  const principal: AgentPrincipal = {
    spiffeId: p.spiffe_id,
    trustDomain: m[1]!,
    path: m[2] ?? '',
    attributes: p.attributes ?? {},
    ...(p.attestor !== undefined ? { attestor: p.attestor } : {}),
    ...(p.attestor_kind !== undefined ? { attestorKind: p.attestor_kind } : {}),
    jti: 'policy-check',
    expiresAt: 0,
    ...(p.scope !== undefined ? { scope: p.scope } : {}),
    ...(p.task !== undefined ? { task: p.task } : {}),
    ...(p.chain !== undefined ? { chain: p.chain } : {}),
    ...(p.user !== undefined ? { user: p.user } : {}),
    ...(p.purpose !== undefined ? { purpose: p.purpose } : {}),
    ...(p.dpop ? { cnf: { jkt: 'what-if' } } : {}),
  };
  let resource: ResourceRef;
  // role.assume names an agent role, `Role::<name>` without an engine (docs/policies.md#roles).
  const agentRole = body.action === 'role.assume' && typeof body.resource === 'string' ? /^(?:Tessera::)?Role::"?([a-z0-9][a-z0-9_-]{0,62})"?$/.exec(body.resource.trim()) : null;
  if (agentRole) resource = { type: 'AgentRole', name: agentRole[1]! };
  else if (typeof body.resource === 'string') resource = parseResourceRef(body.resource);
  else {
    const r = body.resource;
    resource = r.type === 'Agent' ? { type: 'Agent', spiffeId: r.spiffe_id } : r;
  }
  return { principal, action: body.action, resource, ...(body.context ? { context: body.context } : {}) };
}
