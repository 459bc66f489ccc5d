/**
 * MCP prompts through the gateway (spec 2025-11-25 "Prompts"): `prompts/list` and `prompts/get`.
 *
 * Prompts are named like tools (names.ts, ADR 0051): `<server>__<prompt>` in prompts/list, and
 * `<server>/<prompt>` (the policy entity id) is accepted too, so two servers' prompts never
 * collide. A prompt is listed when Cedar (∩ the `prompt:` scope) could permit `prompt.get` on
 * `Prompt::"<server>/<prompt>"` (with `context.args = {}`, or a permit that reads arguments the
 * listing does not have, as for tools: ADR 0140); an upstream is asked only for a caller who may
 * get some prompt of it and only when it declared `prompts`.
 *
 * prompts/get: the name → the arguments checked (args.ts: bounded, strings, no credential
 * shapes) → `prompt.get` with the arguments in `context.args` → the upstream's `prompts/get` →
 * embedded resource URIs federated, the messages scrubbed like tool result content → one
 * `gateway.prompt_get` audit event (arguments as a SHA-256 digest; their values only with
 * `gateway.audit_argument_values`, scrubbed and credential shapes redacted).
 */
import { createHash } from 'node:crypto';
import type { GetPromptResult, Prompt } from '@modelcontextprotocol/sdk/types.js';
import { requiredScopeFor } from '../../policy/scope.js';
import { credentialLike, redactCredentialLike } from '../../shared/credential-like.js';
import { TesseraError } from '../../shared/errors.js';
import type { AgentPrincipal } from '../../shared/principal.js';
import { canonicalJson, type Caller } from '../core.js';
import { exposedNames, parseCallName, serverPrefix, type ToolNameFormat } from '../names.js';
import { visibleFor, type ProbeKind } from '../probe.js';
import { scrubToolResult, type Scrubber, type ScrubHit, type SecretInput } from '../scrub/index.js';
import type { Exchange } from '../served.js';
import { listAll, type ItemsDeps } from '../listing.js';
import type { Upstream } from '../upstream.js';
import { federateItem } from '../resources/uri.js';
import { checkPromptArguments } from './args.js';

export { checkPromptArguments, PROMPT_ARG_LIMITS } from './args.js';

const MAX_ARGS_JSON = 2048;
const MAX_KNOWN = 10_000;

export const PROMPT_KIND: ProbeKind = { action: 'prompt.get', scope: 'prompt', ref: (server, prompt) => ({ type: 'Prompt', server, prompt }) };

export interface PromptsDeps extends ItemsDeps {
  readonly nameFormat?: ToolNameFormat;
  readonly auditArgumentValues: boolean;
}

export interface GatewayPrompts {
  list(caller: Caller, signal: AbortSignal): Promise<Prompt[]>;
  get(name: string, args: Readonly<Record<string, string>> | undefined, caller: Caller, signal: AbortSignal): Promise<GetPromptResult>;
  mayUseAny(p: AgentPrincipal): boolean;
  /** The policy resource of a prompt name, when the name says it without a listing (plain or `<server>/<prompt>`). */
  refOf(name: unknown): { type: 'Prompt'; server: string; prompt: string } | undefined;
  /** The upstream and prompt of an exposed name the caller may get (some arguments), authorized on `x` (completion/complete). */
  authorizeRef(x: Exchange, name: string, caller: Caller, signal: AbortSignal): Promise<{ upstream: Upstream; prompt: string }>;
  /**
   * Whether a completion value may be offered: `prompt.get` with `args` (the context arguments
   * and the value) is permitted, or a permit may hold once the other arguments are given while
   * no forbid holds (as a listing decides, ADR 0140; scope ∩ Cedar, decision cache).
   */
  mayGetWith(p: AgentPrincipal, server: string, prompt: string, args: Readonly<Record<string, string>>): boolean;
}

export function createPrompts(deps: PromptsDeps): GatewayPrompts {
  const { authorizer, kit, serve, probe, logger } = deps;
  const format = deps.nameFormat ?? 'server__tool';
  const upstreams = new Map(deps.upstreams.map((u) => [u.server, u]));
  const prefixes = new Map([...upstreams.keys()].map((s) => [serverPrefix(s), s]));
  /** Exposed names seen in listings → server and prompt (hashed names resolve through it). */
  const known = new Map<string, { server: string; prompt: string }>();

  const visible = (p: AgentPrincipal, server: string, prompt: string): boolean => visibleFor(authorizer, p, 'prompt.get', { type: 'Prompt', server, prompt });

  /** A prompt name is an identifier: one with a credential shape or an injected value is not served. */
  const servable = (name: string, scrubber: Scrubber): boolean => name.length > 0 && name.length <= 256 && credentialLike(name) === undefined && scrubber.scrubText(name).hits.length === 0;

  async function listOf(u: Upstream, caller: Caller, signal: AbortSignal): Promise<{ prompts: Prompt[]; secrets: readonly SecretInput[] }> {
    const r = await listAll<Prompt>(u, caller, signal, 'prompts/list', async (client, cursor, o) => {
      if (!client.getServerCapabilities()?.prompts) return undefined;
      const page = await client.listPrompts(cursor ? { cursor } : {}, o);
      return { items: page.prompts, next: page.nextCursor };
    });
    return { prompts: r.items, secrets: r.secrets };
  }

  function remember(server: string, names: Map<string, string>): void {
    for (const [prompt, exposed] of names) {
      if (known.size >= MAX_KNOWN) known.clear();
      known.set(exposed, { server, prompt });
    }
  }

  /** server/prompt of an exposed name; a hashed one is looked up in the server's listing (asked only of a caller who may use it). */
  async function resolve(name: string, caller: Caller, signal: AbortSignal): Promise<{ server: string; prompt: string } | undefined> {
    const parsed = parseCallName(name, prefixes);
    if (!parsed || !upstreams.has(parsed.server)) return undefined;
    if (parsed.tool !== undefined) return { server: parsed.server, prompt: parsed.tool };
    const seen = known.get(name);
    if (seen) return seen;
    const u = upstreams.get(parsed.server)!;
    if (!probe.mayUse(caller.principal, u.server, PROMPT_KIND)) return undefined;
    const { prompts } = await listOf(u, caller, signal);
    const names = exposedNames(u.server, prompts.map((p) => p.name), format);
    remember(u.server, names);
    return known.get(name);
  }

  function notFound(name: string): TesseraError {
    return new TesseraError('TESSERA_GATEWAY_PROMPT_NOT_FOUND', `no prompt "${redactCredentialLike(name.slice(0, 200))}" is served to you; use a name as prompts/list shows it (<server>__<prompt>), or <server>/<prompt>`);
  }

  function authorizePrompt(x: Exchange, server: string, prompt: string, args: Readonly<Record<string, string>>, p: AgentPrincipal): void {
    const resource = { type: 'Prompt' as const, server, prompt };
    x.authorize({ principal: p, action: 'prompt.get', resource, context: { args } }, requiredScopeFor(resource)!, () =>
      // A prompt the caller cannot get with any arguments is as invisible as an unknown one.
      visible(p, server, prompt) ? new TesseraError('TESSERA_GATEWAY_PROMPT_DENIED', `policy does not permit prompt ${server}/${prompt} with these arguments`) : notFound(`${server}/${prompt}`));
  }

  return {
    mayUseAny(p) {
      return [...upstreams.keys()].some((s) => probe.mayUse(p, s, PROMPT_KIND));
    },

    refOf(name) {
      if (typeof name !== 'string') return undefined;
      const parsed = parseCallName(name, prefixes);
      const prompt = parsed?.tool ?? known.get(name)?.prompt;
      return parsed && upstreams.has(parsed.server) && prompt !== undefined ? { type: 'Prompt', server: parsed.server, prompt } : undefined;
    },

    mayGetWith(p, server, prompt, args) {
      let d;
      try {
        d = authorizer.authorize({ principal: p, action: 'prompt.get', resource: { type: 'Prompt', server, prompt }, context: { args } });
      } catch {
        return false;
      }
      return d.allowed || (!d.scopeDenied && d.mayPermit === true);
    },

    async authorizeRef(x, name, caller, signal) {
      x.target('', name);
      const r = await resolve(name, caller, signal);
      if (!r) return x.deny(notFound(name));
      x.target(r.server, r.prompt);
      const resource = { type: 'Prompt' as const, server: r.server, prompt: r.prompt };
      // Completing an argument needs what listing the prompt needs: some arguments may get it.
      if (!visible(caller.principal, r.server, r.prompt)) {
        x.authorize({ principal: caller.principal, action: 'prompt.get', resource, context: { args: {} } }, requiredScopeFor(resource)!, () => notFound(name));
      }
      return { upstream: upstreams.get(r.server)!, prompt: r.prompt };
    },

    async list(caller, signal) {
      const wanted = [...upstreams.values()].filter((u) => probe.mayUse(caller.principal, u.server, PROMPT_KIND));
      const results = await Promise.all(wanted.map(async (u) => {
        try {
          return { server: u.server, ...(await listOf(u, caller, signal)) };
        } catch (e) {
          logger.warn({ server: u.server, err: (e as Error).message?.slice(0, 300) }, 'gateway: prompts/list of an upstream failed; its prompts are not listed');
          return { server: u.server, prompts: [] as Prompt[], secrets: [] as SecretInput[] };
        }
      }));
      const out: Prompt[] = [];
      for (const r of results) {
        const scrubber = kit.scrubberFor(r.secrets);
        const ok = r.prompts.filter((p) => typeof p.name === 'string' && servable(p.name, scrubber));
        const names = exposedNames(r.server, ok.map((p) => p.name), format);
        remember(r.server, names);
        for (const p of ok) {
          const exposed = names.get(p.name);
          if (exposed === undefined || !visible(caller.principal, r.server, p.name)) continue;
          const { name: _n, ...rest } = p;
          const s = scrubber.scrubValue(rest);
          if (s.hits.length) await kit.auditHits(s.hits, { action: 'prompt.list', server: r.server, item: p.name, itemKind: 'prompt' }, caller, false);
          out.push({ ...s.value, name: exposed });
        }
      }
      return out;
    },

    async get(name, rawArgs, caller, signal) {
      return serve(caller, signal, { kind: 'gateway.prompt_get', action: 'prompt.get', itemKind: 'prompt' }, async (x) => {
        x.target('', name);
        const args = checkPromptArguments(rawArgs);
        const argsJson = canonicalJson(args);
        x.note({ args_sha256: createHash('sha256').update(argsJson).digest('hex') });
        const r = await resolve(name, caller, signal);
        if (!r) return x.deny(notFound(name));
        x.target(r.server, r.prompt);
        if (deps.auditArgumentValues) {
          const shown = redactCredentialLike(kit.scrubberFor([]).scrubText(argsJson).text);
          x.note({ args_json: shown.length > MAX_ARGS_JSON ? `${shown.slice(0, MAX_ARGS_JSON)}…` : shown });
        }
        authorizePrompt(x, r.server, r.prompt, args, caller.principal);
        const u = upstreams.get(r.server)!;
        const result = await x.upstream(u, `${r.server}/${r.prompt}`, async (client, o) => {
          if (!client.getServerCapabilities()?.prompts) throw notFound(name);
          return client.getPrompt({ name: r.prompt, arguments: { ...args } }, o);
        });
        return x.scrub(federateEmbedded(r.server, result), scrubMessages);
      });
    },
  };
}

/** Embedded resources and resource links in prompt messages get their gateway URIs; an unservable one is replaced (uri.ts federateItem). */
export function federateEmbedded(server: string, result: GetPromptResult): GetPromptResult {
  const messages = (result.messages ?? []).map((m) => ({ ...m, content: federateItem(server, m.content) }));
  return { ...result, messages } as GetPromptResult;
}

/** Scrubs prompt messages like tool result content (scrub/result.ts): binaries decoded, split secrets found, invalid items replaced. */
export function scrubMessages(scrubber: Scrubber, result: GetPromptResult): { value: GetPromptResult; hits: readonly ScrubHit[]; replaced: number } {
  const { messages, ...rest } = result;
  const asItems = scrubToolResult(scrubber, { content: messages.map((m) => m.content) });
  const head = scrubber.scrubValue(rest);
  const items = asItems.value.content as GetPromptResult['messages'][number]['content'][];
  const roles = messages.map((m) => m.role);
  const out = items.map((content, i) => ({ role: roles[i] ?? 'assistant', content }));
  return { value: { ...head.value, messages: out } as GetPromptResult, hits: [...asItems.hits, ...head.hits], replaced: asItems.replaced };
}
