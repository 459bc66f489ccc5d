/**
 * `tessera proxy routes|test` (docs/proxy.md, docs/cli.md): the injection proxy's routes, and a
 * what-if for one request (which route, the policy decision, the credential reference, the SSRF
 * verdict — nothing is sent). Server values go through `cell` (route names and URLs are config).
 */
import type { Command } from 'commander';
import type { AdminClient } from './http.js';
import { usage } from './io.js';
import { cell, table } from './format.js';

interface Deps {
  readonly admin: (cmd: Command) => AdminClient;
  readonly isJson: (cmd: Command) => boolean;
  readonly out: (s: string) => void;
  readonly printJson: (v: unknown) => void;
}

const SPIFFE = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** Registers `tessera proxy` and returns it (other proxy subcommands, such as `ca`, are added to it). */
export function registerProxyCommand(program: Command, deps: Deps): Command {
  const proxy = program.command('proxy').description('the injection proxy: routes, what-if tests (docs/proxy.md), its TLS-interception CA (docs/proxy-tls.md)');

  proxy
    .command('routes')
    .description('list the proxy routes: upstream, forward-proxy hosts, the credential reference injected (never its value)')
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await deps.admin(cmd).proxyRoutes();
      if (deps.isJson(cmd)) return deps.printJson(r);
      if (!r.enabled) return deps.out('the proxy is not enabled (set proxy.listen in tessera.yaml)');
      deps.out(`proxy listening on ${cell(r.listen)}`);
      const rows = r.routes.map((x) => {
        const c = (x['credential'] ?? {}) as Record<string, unknown>;
        return { route: x['name'], upstream: x['upstream'], hosts: ((x['hosts'] as string[] | undefined) ?? []).join(','), credential: c['reference'], into: c['query'] !== undefined ? `?${String(c['query'])}=` : c['header'] };
      });
      deps.out(rows.length ? table(rows, ['route', 'upstream', 'hosts', 'credential', 'into']) : 'no routes configured');
    });

  proxy
    .command('test')
    .description('what-if for one request through the proxy: which route, the policy decision for an agent, the credential reference, the SSRF verdict; nothing is sent')
    .argument('<url>', 'the URL the agent would request: the proxy\'s reverse URL http://<proxy>/<route>/…, or a forward-proxy target such as https://api.openai.com/v1/models')
    .option('--method <method>', 'HTTP method', 'GET')
    .requiredOption('--agent <spiffe-id>', 'the agent making the request')
    .option('--body <json>', 'the request\'s JSON body fields the route gives policy (body_fields), e.g. \'{"model":"gpt-4o-mini"}\'')
    .action(async (url: string, opts: { method: string; agent: string; body?: string }, cmd: Command) => {
      if (!/^https?:\/\//i.test(url)) throw usage('<url>: expected an http:// or https:// URL');
      if (!SPIFFE.test(opts.agent)) throw usage('--agent: expected a SPIFFE ID such as spiffe://example.org/agents/reader');
      if (!/^[A-Za-z]{1,16}$/.test(opts.method)) throw usage('--method: expected an HTTP method such as GET or POST');
      const body = opts.body === undefined ? undefined : parseBodyOption(opts.body);
      const r = await deps.admin(cmd).proxyTest({ url, method: opts.method.toUpperCase(), agent: opts.agent, ...(body ? { body } : {}) });
      if (deps.isJson(cmd)) return deps.printJson(r);
      const d = (r['decision'] ?? {}) as Record<string, unknown>;
      const reason = r['reason'] as Record<string, unknown> | undefined;
      deps.out(`route: ${cell(r['route'])} (${cell(r['mode'])})`);
      if (reason) return deps.out(`refused: ${cell(reason['code'])}: ${cell(reason['message'])}`);
      deps.out(`upstream: ${cell(r['upstream'])}`);
      deps.out(`decision: ${d['allowed'] ? 'allow' : 'deny'}${d['code'] ? ` (${cell(d['code'])})` : ''}; policies: ${((d['policies'] as string[] | undefined) ?? []).map(cell).join(', ') || '-'}`);
      const c = r['credential'] as Record<string, unknown> | undefined;
      if (c) {
        const cd = c['decision'] as Record<string, unknown> | undefined;
        const permit = cd ? `; ${cell(cd['action'])}: ${cd['allowed'] ? 'allow' : `deny (${cell(cd['code'])})`}` : '';
        deps.out(`credential: ${cell(c['reference'])} → ${c['query'] !== undefined ? `query ${cell(c['query'])}` : `header ${cell(c['header'])}`}${permit}`);
      }
      const s = (r['ssrf'] ?? {}) as Record<string, unknown>;
      deps.out(`ssrf: ${s['checked'] ? (s['allowed'] ? `allowed (${cell(s['address'])})` : `refused (${cell(s['code'])})`) : 'not checked'}`);
      deps.out(`served: ${r['served'] ? 'yes' : 'no'}`);
    });
  return proxy;
}

/** `--body`: a JSON object of scalars (what the route's body_fields can give policy). */
function parseBodyOption(text: string): Record<string, string | number | boolean> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw usage('--body: expected a JSON object such as \'{"model":"gpt-4o-mini"}\'');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw usage('--body: expected a JSON object such as \'{"model":"gpt-4o-mini"}\'');
  for (const [k, x] of Object.entries(v)) {
    if (!['string', 'number', 'boolean'].includes(typeof x)) throw usage(`--body: field "${k}" must be a string, number or boolean (body_fields are scalars)`);
  }
  return v as Record<string, string | number | boolean>;
}
