/**
 * `completion/complete` through the gateway (spec 2025-11-25 "Completion"), for prompt arguments
 * (`ref/prompt`, the prompt's exposed name) and resource-template arguments (`ref/resource`, the
 * template's gateway URI). Authorized as what it completes: a prompt the caller may get with some
 * arguments (as prompts/list shows it), a template on which Cedar permits `resource.read` (its
 * URI template in `context.uri`); forwarded to the owning upstream only when it declared
 * `completions` (else TESSERA_GATEWAY_COMPLETION_UNSUPPORTED); the argument value and context
 * arguments checked like prompt arguments; the values scrubbed; one `gateway.completion` event.
 *
 * A value names what the caller would ask for with it, so only values the caller may use are
 * returned (ADR 0177): for a template, each value is put into the upstream's URI template (RFC
 * 6570, with the context arguments) and kept only when the resulting URI is one the gateway
 * serves and `resource.read` on it is permitted; for a prompt, kept only when `prompt.get` with
 * the context arguments and that value may be permitted. When a value is dropped, `total` is
 * left out (it would count the hidden ones).
 */
import type { CompleteRequest, CompleteResult } from '@modelcontextprotocol/sdk/types.js';
import { UriTemplate } from '@modelcontextprotocol/sdk/shared/uriTemplate.js';
import { TesseraError } from '../shared/errors.js';
import type { Caller } from './core.js';
import type { GatewayPrompts } from './prompts/index.js';
import { checkPromptArguments } from './prompts/args.js';
import type { GatewayResources } from './resources/index.js';
import type { Serve } from './served.js';

export interface GatewayCompletion {
  complete(params: CompleteRequest['params'], caller: Caller, signal: AbortSignal): Promise<CompleteResult>;
}

/** Values one completion may return (MCP: at most 100). */
const MAX_VALUES = 100;

export function createCompletion(deps: { serve: Serve; prompts: GatewayPrompts; resources: GatewayResources }): GatewayCompletion {
  return {
    async complete(params, caller, signal) {
      return deps.serve(caller, signal, { kind: 'gateway.completion', action: 'completion.complete', itemKind: 'completion' }, async (x) => {
        const ref = params.ref;
        x.note({ ref_type: ref.type === 'ref/prompt' ? 'prompt' : 'resource', argument: params.argument.name.slice(0, 128) });
        // The value being typed and the arguments already given: bounded, no credentials (prompts/args.ts).
        const context = checkPromptArguments(params.context?.arguments);
        checkPromptArguments({ [params.argument.name]: params.argument.value });
        let target: { upstream: import('./upstream.js').Upstream; ref: CompleteRequest['params']['ref'] };
        let usable: (value: string) => boolean;
        const name = params.argument.name;
        if (ref.type === 'ref/prompt') {
          const r = await deps.prompts.authorizeRef(x, ref.name, caller, signal);
          target = { upstream: r.upstream, ref: { type: 'ref/prompt', name: r.prompt } };
          usable = (v) => deps.prompts.mayGetWith(caller.principal, r.upstream.server, r.prompt, { ...context, [name]: v });
        } else {
          const r = deps.resources.authorizeTemplate(x, ref.uri, caller.principal);
          target = { upstream: r.upstream, ref: { type: 'ref/resource', uri: r.uri } };
          const template = templateOf(r.uri);
          usable = (v) => {
            const uri = expand(template, { ...context, [name]: v });
            return uri !== undefined && deps.resources.mayRead(caller.principal, r.upstream.server, uri);
          };
        }
        const result = await x.upstream(target.upstream, `${target.upstream.server} completion/complete`, async (client, o) => {
          if (!client.getServerCapabilities()?.completions) throw new TesseraError('TESSERA_GATEWAY_COMPLETION_UNSUPPORTED', `${target.upstream.server} does not offer completions`);
          return client.complete({ ref: target.ref, argument: { name: params.argument.name, value: params.argument.value }, ...(params.context ? { context: { arguments: { ...context } } } : {}) }, o);
        });
        const offered = (result.completion?.values ?? []).slice(0, MAX_VALUES);
        const values = offered.filter((v) => typeof v === 'string' && usable(v));
        const { total: _total, ...rest } = result.completion ?? {};
        const completion = values.length === offered.length ? { ...result.completion, values } : { ...rest, values };
        if (values.length !== offered.length) x.note({ values_withheld: offered.length - values.length });
        return x.scrub({ ...result, completion } as CompleteResult);
      });
    },
  };
}

/** The upstream's URI template, or undefined when it does not parse (no value is then offered). */
function templateOf(uri: string): UriTemplate | undefined {
  try {
    return new UriTemplate(uri);
  } catch {
    return undefined;
  }
}

/** RFC 6570 expansion of `template` with `vars`; undefined when it cannot be expanded. */
function expand(template: UriTemplate | undefined, vars: Record<string, string>): string | undefined {
  if (!template) return undefined;
  try {
    return template.expand(vars);
  } catch {
    return undefined;
  }
}
