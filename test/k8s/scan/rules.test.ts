/**
 * The scan's rules one by one (docs/k8s-scan.md "Rules", ADRs 0271 and 0274): credential names,
 * value formats, the entropy rule and its false-positive guards, and NetworkPolicy egress
 * semantics (policyTypes, empty selectors, matchExpressions, 0.0.0.0/0, DNS-only rules).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isInertValue, keyShapeOf, looksRandom, nameStrength } from '../../../src/k8s/scan/credentials.js';
import { egressOf, governsEgress, isBroadCidr, selectorMatches } from '../../../src/k8s/scan/netpol.js';
import type { NetworkPolicyInfo } from '../../../src/k8s/scan/objects.js';

test('credential names: strong words, <kind>_KEY, a trailing KEY (weak), and names about a credential', () => {
  for (const n of ['OPENAI_API_KEY', 'GITHUB_TOKEN', 'DB_PASSWORD', 'SMTP_PASS', 'PGPASSWORD_X', 'CLIENT_SECRET', 'aws_secret_access_key', 'openaiApiKey', 'api-key', 'password', 'token', 'SIGNING_KEY', 'SLACK_BOT_TOKEN', 'CREDENTIALS', 'DB_PWD']) {
    assert.equal(nameStrength(n), 'strong', n);
  }
  for (const n of ['OPENAI_KEY', 'STRIPE_KEY', 'SORT_KEY']) assert.equal(nameStrength(n), 'weak', n);
  for (const n of ['TESSERA_TOKEN_FILE', 'PASSWORD_MIN_LENGTH', 'TOKEN_URL', 'API_KEY_HEADER', 'MAX_TOKENS', 'PWD', 'OLDPWD', 'LOG_LEVEL', 'SECRET_NAME', 'TOKEN_TTL', 'AWS_ACCESS_KEY_ID', 'HTTPS_PROXY', 'KEYCLOAK_URL', 'region']) {
    assert.equal(nameStrength(n), 'none', n);
  }
});

test('value formats: vendor keys, JWTs, PEM keys, URLs with a password — and what is not one', () => {
  const cases: [string, string | undefined][] = [
    ['sk-proj-Fake0Test1Key2For3Tessera4Scan5abcdefXYZ', 'openai'],
    ['sk-ant-api03-FakeAnthropicKeyForTesseraScanTests000', 'anthropic'],
    ['ghp_FakeGithubTokenForTesseraScanTest0123', 'github'],
    ['github_pat_11FAKEFAKE0123456789_abcdefghij', 'github-pat'],
    ['xoxb-1111111111-2222222222-FakeSlackTokenForTest', 'slack'],
    ['xoxp-1111111111-FakeSlackUserToken', 'slack'],
    ['AKIAFAKETESTKEY12345', 'aws-access-key-id'],
    ['AIzaFakeGoogleKeyForTheTesseraScan01234', 'google-api-key'],
    ['sk_live_FakeStripeKey0123456789', 'stripe'],
    ['glpat-FakeGitlabToken0123456789', 'gitlab'],
    ['hf_FakeHuggingFaceToken0123456789abcd', 'huggingface'],
    ['Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.c2ln', 'jwt'],
    ['tsr_admin_0123456789abcdefghijKLMN', 'tessera-token'],
    ['-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----', 'pem-private-key'],
    ['-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----', 'pem-private-key'],
    ['postgres://app:S3cret@db:5432/app', 'url-password'],
    ['https://user:pw@example.com/', 'url-password'],
    ['postgres://app:$(DB_PASSWORD)@db:5432/app', undefined],
    ['postgres://db:5432/app', undefined],
    ['-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----', undefined],
    ['sk-short', undefined],
    ['hello world', undefined],
  ];
  for (const [v, id] of cases) assert.equal(keyShapeOf(v)?.id, id, v);
});

test('inert values are never findings, whatever the name', () => {
  for (const v of ['', '  ', 'true', 'False', 'none', '8080', '$(OTHER_VAR)', '/var/run/secrets/token', './key.pem', 'https://auth.example.com/token']) assert.equal(isInertValue(v), true, v);
  for (const v of ['changeme', 'hunter2', 'x', '123456', 'postgres://a:b@h/db']) assert.equal(isInertValue(v), false, v);
});

test('the entropy rule: random strings yes; UUIDs, digests, URLs, image refs, words, short values no', () => {
  for (const v of ['Zq8Lr2Wm5Xv9Tb3Ny7Kc1Pd4Fh6Gj0Sa', 'aB3dE5fG7hJ9kL1mN3pQ5rS7', 'Xk29_fLq-83Jd0Pq7Zm1Rt5']) assert.equal(looksRandom(v), true, v);
  for (const v of [
    '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
    'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3',
    'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    'https://Example.com/Path/2024/abc',
    'ghcr.io/example/agent:1.4.2',
    'registry.example.com:5000/team/image9:V2Release',
    'HelloWorld2024HelloWorld',
    'Short1Aa',
    'all lower case with 123 and Spaces',
    'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345',
  ]) {
    assert.equal(looksRandom(v), false, v);
  }
});

const np = (spec: Partial<NetworkPolicyInfo> & { name?: string }): NetworkPolicyInfo => ({ namespace: 'agents', name: 'p', podSelector: {}, ...spec });

test('label selectors: empty selects all; matchLabels and every matchExpressions operator; unknown operators select nothing', () => {
  const l = { app: 'a', tier: 'x' };
  assert.equal(selectorMatches({}, l), true);
  assert.equal(selectorMatches({ matchLabels: { app: 'a' } }, l), true);
  assert.equal(selectorMatches({ matchLabels: { app: 'b' } }, l), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'In', values: ['a', 'b'] }] }, l), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['a'] }] }, l), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, l), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, l), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, l), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'Equals', values: ['a'] }] }, l), false);
});

test('policyTypes: explicit Egress counts (deny-all with no rules too); absent policyTypes count only with egress rules', () => {
  assert.equal(governsEgress(np({ policyTypes: ['Egress'] })), true);
  assert.equal(governsEgress(np({ policyTypes: ['Ingress'], egress: [{ to: [] }] })), false);
  assert.equal(governsEgress(np({})), false);
  assert.equal(governsEgress(np({ egress: [] })), false);
  assert.equal(governsEgress(np({ egress: [{ ports: [{ port: 443 }] }] })), true);
});

test('egress verdicts: none, deny-all, to Tessera, 0.0.0.0/0 (with except), ::/0, split /1 halves, a rule without "to", DNS anywhere, another namespace\'s policy', () => {
  const labels = { app: 'a' };
  const tessera = { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'tessera' } } }], ports: [{ port: 8201, protocol: 'TCP' }] };
  assert.deepEqual(egressOf('agents', labels, []), { restricted: false, reason: 'no-policy', policies: [] });
  assert.equal(egressOf('agents', labels, [np({ policyTypes: ['Egress'] })]).restricted, true);
  assert.equal(egressOf('agents', labels, [np({ policyTypes: ['Egress'], egress: [tessera] })]).restricted, true);
  assert.equal(egressOf('agents', labels, [np({ podSelector: { matchLabels: { app: 'other' } }, policyTypes: ['Egress'] })]).restricted, false, 'selects another pod');
  assert.equal(egressOf('other', labels, [np({ policyTypes: ['Egress'] })]).restricted, false, 'another namespace');
  const open = (rule: object): boolean => egressOf('agents', labels, [np({ policyTypes: ['Egress'], egress: [tessera] }), np({ name: 'open', policyTypes: ['Egress'], egress: [rule as never] })]).restricted;
  assert.equal(open({ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }] }), false);
  assert.equal(open({ to: [{ ipBlock: { cidr: '::/0' } }] }), false);
  assert.equal(open({ to: [{ ipBlock: { cidr: '0.0.0.0/1' } }, { ipBlock: { cidr: '128.0.0.0/1' } }] }), false);
  assert.equal(open({ ports: [{ port: 443 }] }), false, 'a rule without "to" reaches every address');
  assert.equal(open({ to: [] }), false);
  assert.equal(open({ to: [{ ipBlock: { cidr: 'garbage' } }] }), false, 'unreadable CIDR: fail closed');
  assert.equal(open({ ports: [{ port: 53, protocol: 'UDP' }, { port: '53', protocol: 'TCP' }] }), true, 'DNS anywhere still counts as restricted');
  assert.equal(open({ ports: [{ port: 53, endPort: 1024 }] }), false, 'a port range past 53 is not DNS');
  assert.equal(open({ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }), true);
  assert.equal(open({ to: [{ ipBlock: { cidr: '2001:db8::/32' } }] }), true);
  assert.equal(open({ to: [{ namespaceSelector: {} }] }), true, 'every pod of the cluster is not the internet');
  const v = egressOf('agents', labels, [np({ name: 'open', policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] })]);
  assert.deepEqual(v, { restricted: false, reason: 'open-rule', policies: ['open'], openBy: 'open' });
  assert.equal(isBroadCidr('0.0.0.0/8'), false);
  assert.equal(isBroadCidr('0.0.0.0/7'), true);
});

// Attack on issue 12 item 5 (atk-13): credentials that are not the whole value, or not a bare
// token, used to be silent — no shape, inert (a URL without userinfo) or not random (a space).
test('embedded and URL-borne credentials: found inside a header line, a flag, a JSON blob, a webhook URL, a query, a connection string', () => {
  const cases: [string, string][] = [
    ['Authorization: Bearer ghp_FakeGithubTokenForTesseraScanTest0123', 'github'],
    ['--token=ghp_FakeGithubTokenForTesseraScanTest0123', 'github'],
    ['"sk-ant-api03-FakeAnthropicKeyForTesseraScanTests000"', 'anthropic'],
    ['{"openai":{"key":"sk-proj-Fake0Test1Key2For3Tessera4Scan5abcdefXYZ"}}', 'openai'],
    ['AKIAFAKETESTKEY12345 wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'aws-access-key-id'],
    ['https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX', 'slack-webhook'],
    ['https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789', 'discord-webhook'],
    ['https://api.example.com/v1?api_key=Zq8Lr2Wm5Xv9Tb3Ny7Kc1Pd4', 'url-query-credential'],
    ['https://acct.blob.core.windows.net/c?sv=2022-11-02&sp=r&sig=AbCdEf0123456789%2BxyZ%3D', 'url-query-credential'],
    ['Server=db;User Id=sa;Password=S3cr3tP4ss;', 'connection-string-password'],
    ['Basic dXNlcjpwYXNzd29yZA==', 'basic-auth'],
    ['--db=postgres://app:S3cret@db:5432/app', 'url-password'],
    ['xapp-1-A0123456789-1234567890123-abcdef0123456789abcdef', 'slack-app'],
    ['whsec_FakeStripeWebhookSecret0123456789', 'stripe-webhook'],
    ['SG.FakeSendgridKey0123456.FakeSendgridKeySecondPart0123456789abcd', 'sendgrid'],
    ['npm_FakeNpmTokenForTesseraScanTest0123456789', 'npm'],
    ['pypi-AgEIcHlwaS5vcmcFakeFakeFakeFakeFake0123456789', 'pypi'],
  ];
  for (const [v, id] of cases) assert.equal(keyShapeOf(v)?.id, id, v);
  // …and what still is not one: words around a prefix, a short or referenced query value, a Basic that is not user:password.
  for (const v of [
    'task-manager-for-the-research-cluster-01', 'Basic configuration', 'Basic authentication enabled', 'https://example.com/search?q=token&page=2',
    'https://example.com/?key=abc', '/opt/models/sk-learn-gradient-boosting-v2-final', 'registry.example.com/ml/sk-learn-classifier-runtime:1.4', 'https://api.example.com/?token=$(API_TOKEN)', 'Server=db;Password=$(DB_PASSWORD);', 'password=', 'mask-ant-api03-notreallyakeybecauseprefixed',
  ]) assert.equal(keyShapeOf(v), undefined, v);
});

// Attack (atk-13): each block under the /8 limit, together the whole IPv4 internet.
test('egress: ipBlocks that each pass the /8 limit but together span the public internet open it; private ranges and except are not counted', () => {
  const labels = { app: 'agent' };
  const np = (name: string, cidrs: { cidr: string; except?: string[] }[], ports?: { port: number }[]): NetworkPolicyInfo => ({
    namespace: 'agents', name, podSelector: {}, policyTypes: ['Egress'], egress: [{ to: cidrs.map((c) => ({ ipBlock: c })), ...(ports ? { ports } : {}) }],
  });
  const slash8s = Array.from({ length: 223 }, (_, i) => ({ cidr: `${i + 1}.0.0.0/8` }));
  assert.deepEqual(egressOf('agents', labels, [np('many-slash8', slash8s)]), { restricted: false, reason: 'open-rule', policies: ['many-slash8'], openBy: 'many-slash8' });
  // Split across two policies: the union is judged, the policy that tips it is named.
  assert.deepEqual(egressOf('agents', labels, [np('a-half', slash8s.slice(0, 100)), np('b-half', slash8s.slice(100))]), { restricted: false, reason: 'open-rule', policies: ['a-half', 'b-half'], openBy: 'a-half' });
  assert.equal(egressOf('agents', labels, [np('two-public', [{ cidr: '52.0.0.0/8' }, { cidr: '54.0.0.0/8' }])]).restricted, false);
  // What stays restricted: all private ranges, one public /8, a public /8 pair minus one of them, DNS-only, a few API ranges.
  assert.equal(egressOf('agents', labels, [np('private', [{ cidr: '10.0.0.0/8' }, { cidr: '172.16.0.0/12' }, { cidr: '192.168.0.0/16' }, { cidr: '100.64.0.0/10' }])]).restricted, true);
  assert.equal(egressOf('agents', labels, [np('one-public', [{ cidr: '52.0.0.0/8' }, { cidr: '10.0.0.0/8' }])]).restricted, true);
  assert.equal(egressOf('agents', labels, [np('except', [{ cidr: '52.0.0.0/8' }, { cidr: '54.0.0.0/8', except: ['54.0.0.0/8'] }])]).restricted, true);
  assert.equal(egressOf('agents', labels, [np('dns', slash8s, [{ port: 53 }])]).restricted, true);
  assert.equal(egressOf('agents', labels, [np('apis', [{ cidr: '140.82.112.0/20' }, { cidr: '160.79.104.0/23' }, { cidr: '52.0.0.0/9' }])]).restricted, true);
});
