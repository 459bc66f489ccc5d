/**
 * The `drift:` section of tessera.yaml (docs/drift.md, docs/configuration.md "drift").
 *
 * Tool-definition pinning lives here rather than under `gateway:` (ADR 0280): it is a property
 * of what was *approved*, shared by every upstream server, and its findings are reported with
 * the other kinds of drift. Shape (defaults shown):
 *
 * ```yaml
 * drift:
 *   tools:
 *     first_sight: pin        # pin | require_approval
 *     on_change: block        # block | flag
 *   policy:
 *     expected_digest: sha256:<64 hex>   # optional
 *   secrets:
 *     never_read_after: 30d   # a secret not read this long after it was written is reported
 *     broad_probe: true       # ask Cedar whether an unknown agent may have inject-mode secrets injected
 *   fail_on: warning          # the severity from which `tessera drift` exits 1
 *   check_interval: 5m        # how often the findings (and their metric) are recomputed
 * ```
 */
import { z } from 'zod';
import { durationBetween } from '../config/fields.js';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** `sha256:` and 64 lower-case hex digits: the form every Tessera digest is shown in. */
export const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export const driftConfigSchema = z
  .object({
    tools: z
      .object({
        /** What an upstream tool never seen before gets: pinned as it is, or hidden until approved. */
        first_sight: z.enum(['pin', 'require_approval']).default('pin'),
        /** What a tool whose definition changed since its approval gets: hidden and refused, or served marked. */
        on_change: z.enum(['block', 'flag']).default('block'),
      })
      .strict()
      .prefault({}),
    policy: z
      .object({
        /** The digest the loaded policy set must have (`tessera drift policy-digest <dir>` prints it). */
        expected_digest: z.string().regex(DIGEST_RE, 'expected "sha256:" and 64 lower-case hex digits, as `tessera drift policy-digest <dir>` prints').optional(),
      })
      .strict()
      .prefault({}),
    secrets: z
      .object({
        never_read_after: durationBetween(3_600_000, 3650 * 86_400_000).default(30 * 86_400_000),
        broad_probe: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    fail_on: z.enum(SEVERITIES).default('warning'),
    check_interval: durationBetween(10_000, 86_400_000).default(300_000),
  })
  .strict();

export type DriftConfig = z.output<typeof driftConfigSchema>;
