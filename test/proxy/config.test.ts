/**
 * The `proxy:` section of tessera.yaml: defaults, and each bad key refused with its exact message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/index.js';
import { parseByteSize, formatOf } from '../../src/proxy/config.js';
import { withDevProxy } from '../../src/main.js';
import { TesseraError } from '../../src/shared/errors.js';

const route = (over: Record<string, unknown> = {}) => ({ name: 'api', upstream: 'https://api.example.com/v1', credential: { secret: 'kv/api/key' }, ...over });

/** The issue lines of a refused configuration (`<key>: <message>`). */
function issues(proxy: unknown): string[] {
  try {
    parseConfig({ proxy });
  } catch (e) {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.code, 'TESSERA_CONFIG_INVALID');
    return (e.details as { issues: string[] }).issues;
  }
  assert.fail('the configuration was accepted');
}

test('defaults: no listener, 10MB, 60s, 24h, no routes; a route\'s hosts default to its upstream host', () => {
  const c = parseConfig({});
  assert.equal(c.proxy.listen, undefined);
  assert.equal(c.proxy.max_request_bytes, 10 * 1024 * 1024);
  assert.equal(c.proxy.timeout, 60_000);
  assert.equal(c.proxy.leaf_ttl, 86_400_000);
  assert.equal(c.proxy.max_tunnels_per_agent, 64);
  assert.equal(parseConfig({ proxy: { max_tunnels_per_agent: 2 } }).proxy.max_tunnels_per_agent, 2);
  assert.deepEqual(c.proxy.routes, []);
  const r = parseConfig({ proxy: { listen: '127.0.0.1:8201', routes: [route()] } }).proxy.routes[0]!;
  assert.deepEqual(r.strip_headers, []);
  assert.deepEqual(r.body_fields, []);
  assert.equal(formatOf(r.credential), 'Bearer {value}');
  assert.equal(formatOf(parseConfig({ proxy: { routes: [route({ credential: { secret: 'kv/a', query: 'key' } })] } }).proxy.routes[0]!.credential), '{value}');
});

test('tessera dev: the proxy listens on the server\'s next port unless configured', () => {
  assert.equal(withDevProxy(parseConfig({})).proxy.listen, '127.0.0.1:8201');
  assert.equal(withDevProxy(parseConfig({ server: { listen: '127.0.0.1:0' } })).proxy.listen, '127.0.0.1:0');
  assert.equal(withDevProxy(parseConfig({ proxy: { listen: '0.0.0.0:9000' } })).proxy.listen, '0.0.0.0:9000');
});

test('sizes: bytes or KB/MB/GB (1024-based)', () => {
  assert.equal(parseByteSize('512KB'), 512 * 1024);
  assert.equal(parseByteSize('10MB'), 10 * 1024 * 1024);
  assert.equal(parseByteSize(100), 100);
  assert.equal(parseByteSize('1GiB'), 1024 ** 3);
  assert.equal(parseByteSize('10 parsecs'), null);
  assert.equal(parseByteSize(-1), null);
});

test('each bad key is refused with its exact message', () => {
  const cases: [unknown, string][] = [
    [{ listen: 'localhost' }, 'proxy.listen: expected host:port, e.g. 127.0.0.1:8201'],
    [{ max_request_bytes: '10 parsecs' }, 'proxy.max_request_bytes: expected a size between 0 bytes and 1024MB such as "10MB" or "512KB", got "10 parsecs"'],
    [{ timeout: '1h' }, 'proxy.timeout: expected a duration between 100ms and 10m such as "60s", got "1h"'],
    [{ leaf_ttl: '1s' }, 'proxy.leaf_ttl: expected a duration between 1m and 30d such as "60s", got "1s"'],
    [{ max_tunnels_per_agent: 0 }, 'proxy.max_tunnels_per_agent: expected a whole number of tunnels from 1 to 100000, e.g. 64'],
    [{ max_tunnels_per_agent: 1.5 }, 'proxy.max_tunnels_per_agent: expected a whole number of tunnels from 1 to 100000, e.g. 64'],
    [{ max_tunnels_per_agent: '64' }, 'proxy.max_tunnels_per_agent: expected a whole number of tunnels from 1 to 100000, e.g. 64'],
    [{ routes: [route({ name: 'Bad Name' })] }, 'proxy.routes.0.name: expected a route name: lowercase letters, digits, "_" and "-", starting with a letter or digit, at most 63 characters'],
    [{ routes: [route(), route()] }, 'proxy.routes.1.name: route name "api" is already used by routes[0]; route names must be unique'],
    [{ routes: [route({ upstream: 'ftp://files.example.com' })] }, 'proxy.routes.0.upstream: upstream expected an http:// or https:// URL, got scheme "ftp"'],
    [{ routes: [route({ upstream: 'https://user:pw@api.example.com' })] }, 'proxy.routes.0.upstream: upstream must not carry user:password@ (the credential goes in credential:, never in the URL)'],
    [{ routes: [route({ upstream: 'https://api.example.com/v1?key=1' })] }, 'proxy.routes.0.upstream: upstream must not carry a query (?…): requests add their own'],
    [{ routes: [route({ upstream: 'https://api.example.com/v1#x' })] }, 'proxy.routes.0.upstream: upstream must not carry a fragment (#…)'],
    [{ routes: [route({ upstream: 'https://api.example.com/a/%2e%2e/b' })] }, 'proxy.routes.0.upstream: upstream its base path must not contain "."/".." segments or encoded "/", "\\" or "."'],
    [{ routes: [route({ upstream: 'not a url' })] }, 'proxy.routes.0.upstream: upstream expected an absolute http:// or https:// URL such as "https://api.example.com/v1", got "not a url"'],
    [{ routes: [route({ upstream: undefined })] }, 'proxy.routes.0.upstream: set upstream (or a preset that gives one)'],
    [{ routes: [route({ credential: {} })] }, 'proxy.routes.0.credential: set exactly one credential source: secret, lease or oauth (got none)'],
    [{ routes: [route({ credential: { secret: 'kv/a', lease: { engine: 'postgres', role: 'ro' }, format: '{password}' } })] }, 'proxy.routes.0.credential: set exactly one credential source: secret, lease or oauth (got secret and lease)'],
    [{ routes: [route({ credential: { secret: 'kv/a', format: 'Bearer {password}' } })] }, 'proxy.routes.0.credential.format: placeholder {password} is not available for a secret credential; use {value}'],
    [{ routes: [route({ credential: { lease: { engine: 'postgres', role: 'ro' }, format: 'Basic {value}' } })] }, 'proxy.routes.0.credential.format: placeholder {value} is not available for a lease credential; use {username} or {password}'],
    [{ routes: [route({ credential: { oauth: { token_url: 'https://as.example.com/token', client_id: 'c', client_secret: 'kv/as/secret' }, format: 'Bearer {value}' } })] }, 'proxy.routes.0.credential.format: placeholder {value} is not available for a oauth credential; use {access_token}'],
    [{ routes: [route({ credential: { secret: 'kv/a', format: 'static' } })] }, 'proxy.routes.0.credential.format: the format names no placeholder; use {value}'],
    [{ routes: [route({ credential: { secret: 'kv/a', format: 'Bearer {value' } })] }, 'proxy.routes.0.credential.format: unbalanced "{" or "}" in "Bearer {value"'],
    [{ routes: [route({ credential: { lease: { engine: 'postgres', role: 'ro' } } })] }, 'proxy.routes.0.credential.format: a lease credential needs a format, e.g. "Basic {username}:{password}" or "{password}"'],
    [{ routes: [route({ credential: { secret: 'kv/a', header: 'x-key', query: 'key' } })] }, 'proxy.routes.0.credential.query: set header or query, not both'],
    [{ routes: [route({ credential: { secret: 'kv/a', header: 'bad header' } })] }, 'proxy.routes.0.credential.header: expected an HTTP header name such as "Authorization" or "x-api-key"'],
    [{ routes: [route({ credential: { secret: 'kv/a', query: 'a&b' } })] }, 'proxy.routes.0.credential.query: expected a query parameter name (letters, digits, "_", ".", "~", "-")'],
    [{ routes: [route({ hosts: ['API.example.com'] })] }, 'proxy.routes.0.hosts.0: expected a lowercase DNS name such as "api.openai.com"'],
    [{ routes: [route(), route({ name: 'other', hosts: ['api.example.com'] })] }, 'proxy.routes.1.hosts: host "api.example.com" is already served by route "api"; a host belongs to one route (set hosts on one of them; hosts: [] serves none)'],
    [{ routes: [route({ allow_private: ['10.0.0.0/33'] })] }, 'proxy.routes.0.allow_private.0: expected a CIDR block ("10.0.0.0/8"), an address, or host[:port] ("internal.svc:8080")'],
    [{ routes: [route({ allow_private: ['internal.svc:99999'] })] }, 'proxy.routes.0.allow_private.0: expected a CIDR block ("10.0.0.0/8"), an address, or host[:port] ("internal.svc:8080")'],
    [{ routes: [route({ body_fields: Array.from({ length: 17 }, (_, i) => `f${i}`) })] }, 'proxy.routes.0.body_fields: at most 16 body_fields'],
    [{ routes: [route({ body_fields: ['model', 'model'] })] }, 'proxy.routes.0.body_fields: body field "model" is listed twice'],
    [{ routes: [route({ body_fields: ['a b'] })] }, 'proxy.routes.0.body_fields.0: expected a top-level JSON field name such as "model"'],
    [{ routes: [route({ preset: 'gemini' })] }, 'proxy.routes.0.preset: Invalid option: expected one of "openai"|"anthropic"'],
    [{ routes: [route({ extra: 1 })] }, 'proxy.routes.0: Unrecognized key: "extra"'],
    [{ routes: [route({ credential: { oauth: { token_url: 'https://as.example.com/token', client_id: 'c', client_secret: 'kv/as/secret', scope: 'a  b' } } })] }, 'proxy.routes.0.credential.oauth.scope: space-separated scope tokens (RFC 6749 §3.3)'],
  ];
  for (const [proxy, message] of cases) assert.ok(issues(proxy).includes(message), `${JSON.stringify(proxy)}:\n  got ${JSON.stringify(issues(proxy))}\n  want ${message}`);
});

test('valid: CIDR, addresses, host[:port] exceptions; every credential source', () => {
  const c = parseConfig({
    proxy: {
      listen: '127.0.0.1:8201',
      routes: [
        route({ allow_private: ['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8', '::1', 'internal.svc:8080', 'internal.svc', '[::1]:8080'] }),
        route({ name: 'pg', upstream: 'http://10.0.0.5:8080', credential: { lease: { engine: 'postgres', role: 'ro', ttl: '5m' }, header: 'x-db', format: '{username}:{password}' } }),
        route({ name: 'as', upstream: 'https://svc.example.com', credential: { oauth: { token_url: 'https://as.example.com/token', client_id: 'c', client_secret: 'kv/as/secret', scope: 'read write' } } }),
      ],
    },
  });
  assert.equal(c.proxy.routes.length, 3);
  assert.equal(c.proxy.routes[1]!.credential.lease!.ttl, 300_000);
});
