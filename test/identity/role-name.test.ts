/**
 * One role-name rule (src/shared/principal.ts ROLE_NAME / isRoleName) for the three places that
 * check a role name: the server at login (`scope=role:<name>`, src/identity/role.ts), the
 * injector's `tessera.io/role` annotation (src/k8s/injector) and the sidecar's `--role`
 * (src/agent). Before they shared it, the sidecar accepted names login refuses (upper case, ".",
 * ":", up to 128 characters): such a pod started and then failed every login. Each name below is
 * accepted by all three or refused by all three, each with its own stable code; the sidecar
 * command refuses a bad `--role` before it contacts anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loginRole } from '../../src/identity/role.js';
import { parseAnnotations } from '../../src/k8s/injector/index.js';
import { parseSidecarOptions } from '../../src/agent/index.js';
import { ROLE_NAME, ROLE_NAME_RULE, isRoleName } from '../../src/shared/principal.js';
import { runCli, type Runtime } from '../../src/cli/index.js';

/** What the old sidecar rule (/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/) let through and login refuses. */
const OLD_SIDECAR_ONLY = ['Admin', 'support.tickets', 'team:reader', 'A', `r${'x'.repeat(63)}`, 'ops-Team', '9.0'];
const REFUSED = [...OLD_SIDECAR_ONLY, '', '-lead', '_x', 'a b', 'a/b', 'role:x', 'é', 'a\n', `${'a'.repeat(64)}`];
const ACCEPTED = ['support', 'a', '0', 'x_y-z', 'tier-2_reader', 'a'.repeat(63)];

const sidecar = (role: string) => parseSidecarOptions({ addr: 'http://tessera.tessera.svc:8200', tokenFile: '/var/run/secrets/tessera.io/serviceaccount/token', listenMcp: '127.0.0.1:15002', role });
const annotation = (role: string) => parseAnnotations({ 'tessera.io/inject': 'true', 'tessera.io/agent': 'true', 'tessera.io/role': role });
const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code ?? 'no code';
  }
};

test('the rule is ROLE_NAME, and every checker uses it: same verdict for every name', () => {
  for (const name of ACCEPTED) {
    assert.ok(isRoleName(name), name);
    assert.equal(loginRole(`role:${name}`), name);
    assert.equal(annotation(name).role, name);
    assert.equal(sidecar(name).role, name);
  }
  for (const name of REFUSED) {
    assert.equal(isRoleName(name), false, JSON.stringify(name));
    assert.equal(ROLE_NAME.test(name), false);
    // An empty scope is "no role" at login; an empty annotation or flag is a bad name.
    if (name !== '') assert.equal(codeOf(() => loginRole(`role:${name}`)), 'TESSERA_ROLE_INVALID', `login ${JSON.stringify(name)}`);
    assert.equal(codeOf(() => annotation(name)), 'TESSERA_INJECTOR_ANNOTATION_INVALID', `annotation ${JSON.stringify(name)}`);
    assert.equal(codeOf(() => sidecar(name)), 'TESSERA_AGENT_OPTIONS_INVALID', `--role ${JSON.stringify(name)}`);
  }
});

test('names the old sidecar rule accepted are refused by the sidecar now, with the rule in the message', () => {
  const old = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
  for (const name of OLD_SIDECAR_ONLY) {
    assert.ok(old.test(name), `${name} passed the old sidecar rule`);
    assert.throws(() => sidecar(name), (e: Error & { code?: string }) => e.code === 'TESSERA_AGENT_OPTIONS_INVALID' && e.message.includes(ROLE_NAME_RULE));
    assert.throws(() => annotation(name), (e: Error & { code?: string }) => e.code === 'TESSERA_INJECTOR_ANNOTATION_INVALID' && e.message.includes(ROLE_NAME_RULE));
    assert.throws(() => loginRole(`role:${name}`), (e: Error & { code?: string }) => e.code === 'TESSERA_ROLE_INVALID' && e.message.includes(ROLE_NAME_RULE));
  }
});

test('`tessera agent --role Admin` exits with TESSERA_AGENT_OPTIONS_INVALID before it contacts anything', async () => {
  const notUsed = (): Promise<never> => Promise.reject(new Error('not used'));
  const runtime: Runtime = { dev: notUsed, server: notUsed, init: notUsed, rotateMasterKey: notUsed, verifyAuditOffline: notUsed };
  let stdout = '';
  let stderr = '';
  // Port 9 (discard) on 127.0.0.1: nothing listens; the command must fail on the flag, not the network.
  const code = await runCli(['agent', '--addr', 'http://127.0.0.1:9', '--token-file', '/nonexistent/token', '--listen-mcp', '127.0.0.1:0', '--role', 'Admin'], runtime, {
    stdout: { write: (s: string) => void (stdout += s) },
    stderr: { write: (s: string) => void (stderr += s) },
    env: {},
  });
  assert.notEqual(code, 0);
  assert.equal(stdout, '');
  assert.match(stderr, /\[TESSERA_AGENT_OPTIONS_INVALID\]/);
  assert.match(stderr, /--role "Admin"/);
});
