/**
 * Every option whose value the server checks against a fixed set is checked by the CLI against
 * the same set (the server's own constant), before any request: a wrong value exits 2
 * (TESSERA_CLI_USAGE) and its help lists the choices. (`lease list --help` once listed a state
 * `expired` the server refused with exit 1.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command, Option } from 'commander';
import { buildProgram, runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
import { SECRET_MODES } from '../../src/secrets/kv.js';
import { REVOCATION_KINDS } from '../../src/revocations/service.js';
import { LEASE_STATES } from '../../src/leases/service.js';
import { POLICY_ACTIONS } from '../../src/policy/types.js';
import { ATTESTOR_KINDS } from '../../src/shared/principal.js';
import { OWNED_OBJECT_RULES } from '../../src/engines/postgres/config.js';
import { TASK_STATES } from '../../src/tasks/states.js';
import { EXPOSURE_GROUPINGS, EXPOSURE_KINDS } from '../../src/exposure/kinds.js';
import { SEVERITIES } from '../../src/k8s/scan/scan.js';
import { SEVERITIES as DRIFT_SEVERITIES } from '../../src/drift/config.js';
import { FINDING_KINDS } from '../../src/drift/findings.js';

const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };

/** command path → option flag → the server's set. */
const ENUMS: readonly (readonly [string, string, readonly string[]])[] = [
  ['kv put', '--mode', SECRET_MODES],
  ['revoke list', '--kind', REVOCATION_KINDS],
  ['lease list', '--state', LEASE_STATES],
  ['policy check', '--action', POLICY_ACTIONS],
  ['policy check', '--attestor-kind', ATTESTOR_KINDS],
  ['engine postgres role', '--owned-objects', OWNED_OBJECT_RULES],
  ['task list', '--state', TASK_STATES],
  ['exposure', '--by', EXPOSURE_GROUPINGS],
  ['exposure', '--kind', EXPOSURE_KINDS],
  // Local (no server): the scan's severities, and `none` for "never fail".
  ['k8s scan', '--fail-on', [...SEVERITIES, 'none']],
  ['drift check', '--fail-on', DRIFT_SEVERITIES],
  ['drift check', '--kind', FINDING_KINDS],
  // Local: the injector's log levels (it runs without a server).
  ['injector', '--log-level', ['error', 'warn', 'info', 'debug']],
];

const ARGS: Readonly<Record<string, string[]>> = {
  'kv put': ['kv', 'put', 'a/b', 'v'],
  'revoke list': ['revoke', 'list'],
  'lease list': ['lease', 'list'],
  'policy check': ['policy', 'check', '--principal', 'spiffe://example.org/a', '--action', 'secret.read', '--resource', 'Secret::a/b'],
  'engine postgres role': ['engine', 'postgres', 'role', 'clinic', 'reader'],
  'task list': ['task', 'list'],
  exposure: ['exposure'],
  'k8s scan': ['k8s', 'scan', '-f', 'test/k8s/scan/fixtures/cluster.json'],
  'drift check': ['drift', 'check'],
  injector: ['injector'],
};

function find(program: Command, path: string): Command {
  let cmd = program;
  for (const name of path.split(' ')) {
    const next = cmd.commands.find((c) => c.name() === name);
    assert.ok(next, `no command ${path}`);
    cmd = next;
  }
  return cmd;
}

function io(calls: string[]): { io: CliIo; out: { stdout: string; stderr: string } } {
  const out = { stdout: '', stderr: '' };
  return {
    out,
    io: {
      stdout: { write: (s: string) => (out.stdout += s) },
      stderr: { write: (s: string) => (out.stderr += s) },
      env: { TESSERA_ADDR: 'http://127.0.0.1:9', TESSERA_TOKEN: 'tsr_admin_x' },
      fetch: async (url) => {
        calls.push(url);
        throw new Error('no request may be sent');
      },
    },
  };
}

test('each enumerated option offers exactly the server\'s values', () => {
  const program = buildProgram(runtime, io([]).io);
  for (const [path, flag, values] of ENUMS) {
    const opt = find(program, path).options.find((o: Option) => o.long === flag);
    assert.ok(opt, `${path} has no ${flag}`);
    assert.deepEqual(opt.argChoices, [...values], `${path} ${flag}`);
  }
});

test('a value outside the set exits 2 with the choices, before any request', async () => {
  for (const [path, flag, values] of ENUMS) {
    const calls: string[] = [];
    const { io: cliIo, out } = io(calls);
    // 'bogus' is in no set ('expired' once was the value `lease list --help` wrongly offered; it is a task state).
    const code = await runCli([...ARGS[path]!, flag, 'bogus'], runtime, cliIo);
    assert.equal(code, 2, `${path} ${flag} bogus: ${out.stderr}`);
    assert.match(out.stderr, new RegExp(`argument 'bogus' is invalid. Allowed choices are ${values.join(', ').replace(/\./g, '\\.')}`), path);
    assert.deepEqual(calls, [], `${path} sent a request`);
  }
});

test('every option with choices anywhere in the tree refuses a value outside them locally', async () => {
  const program = buildProgram(runtime, io([]).io);
  const all: string[] = [];
  const walk = (c: Command, path: string[]): void => {
    for (const o of c.options as Option[]) if (o.argChoices) all.push(`${[...path].join(' ')} ${o.long}`);
    for (const sub of c.commands) walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  const listed = new Set(ENUMS.map(([p, f]) => `${p} ${f}`));
  // The revoke subcommands share `revoke list --kind`; every other option with choices is in the table.
  assert.deepEqual(all.filter((x) => !listed.has(x)).sort(), []);
  assert.equal(listed.size, ENUMS.length);
});
