/**
 * The `resource:` and `prompt:` scope forms (src/policy/scope.ts) and the gateway's URI
 * federation (src/gateway/resources/uri.ts): names of MCP resources match scopes segment by
 * segment, task-token narrowing keeps working for the new forms, and gateway URIs map back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authorizeWithScope, kindsCoveredWhole, parseScope, requiredScopeFor, scopeCovers, scopeCoversName } from '../../src/policy/scope.js';
import type { Authorizer, Decision } from '../../src/policy/types.js';
import { narrowScope } from '../../src/tasks/narrow.js';
import { isTesseraError } from '../../src/shared/errors.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import { gatewayUri, parseGatewayUri, upstreamUriFault } from '../../src/gateway/resources/uri.js';

const permitAll: Authorizer = { authorize: (): Decision => ({ allowed: true, policies: ['p'], errors: [], cached: false }) };
const agent = (scope?: string[]): AgentPrincipal => ({ spiffeId: 'spiffe://example.org/a', trustDomain: 'example.org', path: '/a', attributes: {}, jti: 'j', expiresAt: 0, ...(scope ? { scope } : {}) });

test('resource: and prompt: scopes parse; a prompt scope is <server>/<prompt>', () => {
  assert.deepEqual(parseScope('resource:docs/file:/srv/**').segments, ['docs', 'file:', 'srv', '**']);
  assert.equal(parseScope('prompt:docs/summarize').kind, 'prompt');
  for (const bad of ['prompt:docs', 'prompt:a/b/c', 'resource:docs/../x', 'resource:docs//x', 'resource:docs/a*']) {
    assert.throws(() => parseScope(bad), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_OAUTH_INVALID_SCOPE', bad);
  }
});

test('a resource is named by its server and its URI split at "/" (empty segments dropped); a prompt is one segment', () => {
  assert.equal(requiredScopeFor({ type: 'Resource', server: 'docs', uri: 'file:///srv/a.md' }), 'resource:docs/file:/srv/a.md');
  assert.equal(requiredScopeFor({ type: 'Prompt', server: 'docs', prompt: 'summarize' }), 'prompt:docs/summarize');
});

test('scope ∩ policy for resources: literal segments, wildcards covering characters a scope cannot name, prompts with any name', () => {
  const read = (scope: string[], uri: string) => authorizeWithScope(permitAll, { principal: agent(scope), action: 'resource.read', resource: { type: 'Resource', server: 'docs', uri } });
  assert.equal(read(['resource:docs/file:/srv/**'], 'file:///srv/a.md').allowed, true);
  assert.equal(read(['resource:docs/file:/srv/**'], 'file:///etc/passwd').scopeDenied, true);
  assert.equal(read(['resource:docs/file:/srv/**'], 'file:///srv/q?x={y}%20').allowed, true, 'a wildcard covers any segment text');
  assert.equal(read(['resource:docs/**'], 'db://t?q=1').allowed, true);
  assert.equal(read(['resource:other/**'], 'file:///srv/a.md').scopeDenied, true, "another server's scope does not cover");
  assert.equal(read(['tool:docs/*'], 'file:///srv/a.md').scopeDenied, true, 'another kind does not cover');
  assert.equal(read(['resource:docs/file:/srv/a.md'], 'file:///srv/a.md').allowed, true);
  assert.equal(read(['resource:docs/file:/srv/*'], 'file:///srv/sub/a.md').scopeDenied, true, '* is one segment');
  const get = (scope: string[], prompt: string) => authorizeWithScope(permitAll, { principal: agent(scope), action: 'prompt.get', resource: { type: 'Prompt', server: 'docs', prompt } });
  assert.equal(get(['prompt:docs/*'], 'a prompt/with slashes?').allowed, true);
  assert.equal(get(['prompt:docs/summarize'], 'summarize').allowed, true);
  assert.equal(get(['prompt:docs/summarize'], 'other').scopeDenied, true);
  assert.equal(get(['resource:docs/**'], 'summarize').scopeDenied, true);
  // No scope (an agent token): policy alone decides.
  assert.equal(authorizeWithScope(permitAll, { principal: agent(), action: 'prompt.get', resource: { type: 'Prompt', server: 'docs', prompt: 'x' } }).allowed, true);
});

test('task-token narrowing for the new forms: a child may narrow, never widen', () => {
  assert.deepEqual(narrowScope(['resource:docs/**'], ['resource:docs/file:/srv/**'], 'exact'), ['resource:docs/file:/srv/**']);
  assert.deepEqual(narrowScope(['prompt:docs/*'], ['prompt:docs/summarize'], 'exact'), ['prompt:docs/summarize']);
  for (const [parent, child] of [[['resource:docs/file:/srv/**'], ['resource:docs/**']], [['prompt:docs/summarize'], ['prompt:docs/*']], [['tool:docs/*'], ['prompt:docs/x']], [['resource:docs/**'], ['resource:other/x:/y']]] as const) {
    assert.throws(() => narrowScope(parent, child, 'exact'), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_TASK_SCOPE_WIDENED', `${child} under ${parent}`);
  }
  assert.deepEqual(narrowScope(['resource:docs/file:/srv/**'], ['resource:docs/**', 'prompt:docs/x'], 'trim'), ['resource:docs/file:/srv/**']);
  assert.ok(scopeCovers(['resource:**'], 'resource:docs/file:/srv/**'));
  assert.deepEqual(kindsCoveredWhole(['resource:**', 'prompt:*/*', 'tool:a/b']), ['resource', 'prompt']);
  assert.deepEqual(kindsCoveredWhole(['resource:*/**']), ['resource']);
});

test('gateway URIs map back to the upstream URI byte for byte; refusals carry stable codes', () => {
  const servers = new Set(['docs', 'everything']);
  for (const uri of ['file:///srv/a.md', 'demo://resource/dynamic/text/{id}', 'db://t?q=1&r=2#frag', 'urn:isbn:0451450523', 'https://example.org/a/b.c']) {
    assert.equal(upstreamUriFault('docs', uri), undefined, uri);
    assert.deepEqual(parseGatewayUri(gatewayUri('docs', uri), servers), { server: 'docs', uri });
  }
  const code = (uri: string): string => {
    try {
      parseGatewayUri(uri, servers);
    } catch (e) {
      return isTesseraError(e) ? e.code : String(e);
    }
    return 'accepted';
  };
  for (const bad of ['tessera://docs/file:///srv/../etc', 'tessera://docs/file:///srv/./a', 'tessera://docs/file:///srv/..;x/a', 'tessera://docs/file:///srv/%2E%2e/a', 'tessera://docs/a:%2F', 'tessera://docs/a:%5c', 'tessera://docs/a:%252e', 'tessera://docs/a: b', 'tessera://docs/a:\u0000', 'tessera://docs/tessera://everything/x:y', 'tessera://docs/a', 'http://docs/a:b', 'tessera:/docs/a:b', 'tessera://docs', `tessera://docs/a:${'x'.repeat(2048)}`, 'tessera://%2e%2e/a:b']) {
    assert.equal(code(bad), 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', bad.slice(0, 60));
  }
  // One spelling per resource (RFC 3986 §6.2.2): what Cedar sees is what the upstream reads.
  for (const bad of ['tessera://docs/file:///srv/.privat%65/k', 'tessera://docs/file:///srv/%41', 'tessera://docs/a:%7e', 'tessera://docs/a:%5F', 'tessera://docs/a:%2D', 'tessera://docs/a:%39', 'tessera://docs/DEMO://x/y', 'tessera://docs/File:///srv/a', 'tessera://docs/file:////srv/a', 'tessera://docs/file:///srv//a', 'tessera://docs/demo://x//y', 'tessera://docs/file://localhost/srv/a', 'tessera://docs/file://LOCALHOST/srv/a', 'tessera://docs/file://host.example/srv/a', 'tessera://docs/file:/srv/a', 'tessera://docs/demo://x/caf\u00e9', 'tessera://docs/demo://x/\uff0e\uff0e/y']) {
    assert.equal(code(bad), 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', bad.slice(0, 60));
  }
  for (const ok of ['file:///srv/caf%C3%A9', 'demo://x/a%3Ab', 'https://example.org/?u=https://x//y', 'demo://x/y#a//b', 'mailto:a@example.org']) {
    assert.equal(upstreamUriFault('docs', ok), undefined, ok);
  }
  assert.equal(code('tessera://nope/a:b'), 'TESSERA_GATEWAY_RESOURCE_NOT_FOUND');
  assert.equal(code('tessera://Docs/a:b'), 'TESSERA_GATEWAY_RESOURCE_NOT_FOUND', 'server names are exact');
});

test('a resource URI with more segments than a scope may have is matched exactly (no memo collision past 32 segments)', () => {
  // covers() memoized (i, j) as i * 34 + j: past 34 URI segments two states shared a key, so a
  // scope that covers a long URI could be refused (and, in general, answered from another state).
  const ref = (g: readonly string[], r: readonly string[]): boolean => {
    const go = (i: number, j: number): boolean => {
      if (i === g.length) return j === r.length;
      if (g[i] === '**') {
        for (let k = i === g.length - 1 ? 1 : 0; j + k <= r.length; k++) if (go(i + 1, j + k)) return true;
        return false;
      }
      if (j === r.length) return false;
      return (g[i] === '*' || g[i] === r[j]) && go(i + 1, j + 1);
    };
    return go(0, 0);
  };
  const cases: [string, string][] = [
    ['s/**/*/b', 's/b/a/b/a/a/b/b/a/b/a/a/b/b/a/a/b/b/a/a/b/b/a/b/a/a/a/b/a/b/b/b/a/b/a/a/b/b/a/b/a/a/b/b/a/b/a/b/a/a/b/a/a/b/b/b/b/b'],
    ['s/*/**/**/*/a/*', 's/a/a/b/b/a/a/a/b/b/a/b/b/a/a/a/a/b/a/b/a/b/b/b/b/b/a/b/a/b/b/a/a/a/b/a/b/a/a/a/b/b/a/a/b/b/a/b/b/a/b'],
    ['s/**/b/*/**/*', 's/b/a/b/b/b/b/b/a/a/a/a/a/a/a/b/a/a/b/b/b/b/b/a/b/b/b/a/a/b/a/a/a/b/b/a/b/b/a/b/b/a/a/a/b/a/b/b/b/b/b/a/b/b/b/b/b/b/a/a/a/a/a/a/a/b/a/b/b/a/b'],
  ];
  for (const [g, r] of cases) {
    const segs = r.split('/');
    assert.equal(ref(g.split('/'), segs), true, g);
    assert.equal(scopeCoversName([`resource:${g}`], 'resource', segs), true, `${g} covers a ${segs.length}-segment name`);
    // Through the request pipeline: a task token with that scope reads the long URI.
    const uri = `demo://${segs.slice(1).join('/')}`;
    const d = authorizeWithScope(permitAll, { principal: agent([`resource:${g.replace(/^s\//, 'srv/demo:/')}`]), action: 'resource.read', resource: { type: 'Resource', server: 'srv', uri } });
    assert.equal(d.allowed, true, `${g} lets the task read ${uri.slice(0, 40)}…`);
  }
});
