/**
 * The `rotation` section of tessera.yaml (docs/rotation.md, docs/configuration.md "rotation").
 * Durations are parsed to milliseconds.
 */
import { z } from 'zod';
import { durationBetween, secretPathField } from '../config/fields.js';
import { targetRuleProblem } from '../proxy/ssrf.js';

const DAY = 86_400_000;

/** An operator-configured HTTP rotator: the endpoint Tessera calls to create and retire credentials. */
export const httpRotatorConfig = z.object({
  /** http(s) URL; POSTed `{"action":"create"|"retire", ...}` (docs/rotation.md "http"). */
  url: z.url({ protocol: /^https?$/ }),
  /** kv path of the credential Tessera calls the endpoint with (sent as `<auth_scheme> <value>`). */
  auth_secret: secretPathField,
  auth_header: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'expected an HTTP header name').default('authorization'),
  /** Prefix of the header value; "" sends the secret alone. */
  auth_scheme: z.string().max(32).regex(/^[A-Za-z0-9._-]*$/, 'expected a scheme word such as Bearer').default('Bearer'),
  timeout: durationBetween(100, 120_000).prefault('10s'),
  /** SSRF exceptions as for proxy routes (docs/proxy-ssrf.md): CIDRs or host[:port]. */
  allow_private: z.array(z.string().superRefine((s, ctx) => {
    const p = targetRuleProblem(s);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  })).max(64).default([]),
}).strict();

export const rotationConfigSchema = z.object({
  /** How often the leader looks for due secrets. */
  interval: durationBetween(1000, DAY).prefault('1m'),
  /** How long the previous version stays valid after a rotation, unless the rotator says otherwise (≥ 2 s: the proxy's 1 s value cache). */
  grace_period: durationBetween(2000, 90 * DAY).prefault('1h'),
  /** Rotations running at once per pass. */
  max_concurrency: z.number().int().min(1).max(64).default(8),
  retry: z.object({
    initial: durationBetween(100, DAY).prefault('30s'),
    max: durationBetween(100, 7 * DAY).prefault('1h'),
  }).strict().prefault({}),
  http_rotators: z.record(z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'expected a lower-case name'), httpRotatorConfig).default({}),
}).strict();

export type RotationConfig = z.output<typeof rotationConfigSchema>;
export type HttpRotatorConfig = z.output<typeof httpRotatorConfig>;
