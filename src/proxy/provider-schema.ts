/**
 * zod schemas of the PROVIDERS part's route keys, for the proxy core's route schema
 * (src/proxy/config.ts) to embed: `preset`, `limits`, `credential.oauth`
 * (docs/proxy-providers.md "Configuration"). The core wraps its route schema in
 * `z.preprocess(applyPreset, …)` (src/proxy/providers.ts) so presets fill the keys left out.
 */
import { z } from 'zod';
import { durationBetween, secretPathField } from '../config/fields.js';
import type { RouteLimits } from './limits.js';
import { validateTokenUrl } from './oauth-client.js';
import { PRESET_NAMES, type PresetName } from './providers.js';

/** `proxy.routes[].preset`. */
export const presetField = z.enum(PRESET_NAMES as [PresetName, ...PresetName[]]);

/** `proxy.routes[].limits`: `window` (1 s – 7 d, default 1m) and at least one of `requests`, `tokens`. */
export const routeLimitsField = z.strictObject({
  window: durationBetween(1000, 7 * 86_400_000).prefault('1m'),
  requests: z.number().int().min(1).max(1_000_000_000).optional(),
  tokens: z.number().int().min(1).max(1_000_000_000_000).optional(),
}).refine((l) => l.requests !== undefined || l.tokens !== undefined, 'limits need `requests`, `tokens` or both');

/** The RouteLimits of a parsed `limits` (src/proxy/limits.ts). */
export function toRouteLimits(l: z.output<typeof routeLimitsField>): RouteLimits {
  return { windowMs: l.window, ...(l.requests !== undefined ? { requests: l.requests } : {}), ...(l.tokens !== undefined ? { tokens: l.tokens } : {}) };
}

/** RFC 6749 §3.3 scope: space-separated scope-tokens of %x21 / %x23-5B / %x5D-7E. */
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*$/;

/** `proxy.routes[].credential.oauth`: an OAuth 2.0 client-credentials source (src/proxy/oauth-client.ts). */
export const oauthCredentialField = z.strictObject({
  token_url: z.string().max(2048).superRefine((u, ctx) => {
    const problem = validateTokenUrl(u);
    if (problem) ctx.addIssue({ code: 'custom', message: `token_url ${problem}` });
  }),
  client_id: z.string().min(1).max(256).regex(/^[\x20-\x7e]+$/, 'printable ASCII (RFC 6749 §2.3.1)'),
  /** The kv path of the client secret. */
  client_secret: secretPathField,
  scope: z.string().max(1024).regex(SCOPE, 'space-separated scope tokens (RFC 6749 §3.3)').optional(),
  audience: z.string().min(1).max(2048).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces').optional(),
  auth_method: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
});
