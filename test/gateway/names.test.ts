/**
 * Exposed tool names (src/gateway/names.ts): what strict MCP clients and model APIs accept,
 * deterministic, collision-free, and resolvable back to server + tool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exposedNames, parseCallName, serverPrefix, baseExposedName, nameHash, PORTABLE_TOOL_NAME } from '../../src/gateway/names.js';

const LONG = 'a_very_long_tool_name_that_an_upstream_server_might_well_use_for_something';
const WEIRD_TOOLS = ['echo', 'get-data', 'files.read', 'files/read', 'files read', 'café', '', 'x'.repeat(200), LONG, 'ünïcødé', '__init__', '-', 'a__b'];

test('every exposed name matches ^[a-zA-Z0-9_-]{1,64}$, for any server and tool name', () => {
  for (const server of ['gh', 'a', 'records-db', 'my_server', 'x'.repeat(63), 'a__b', 'ends_', '0', 'a-'.repeat(31) + 'a']) {
    const names = exposedNames(server, WEIRD_TOOLS);
    assert.equal(names.size, new Set(WEIRD_TOOLS).size, `${server}: every tool gets a name`);
    assert.equal(new Set(names.values()).size, names.size, `${server}: names are unique`);
    for (const [tool, name] of names) assert.match(name, PORTABLE_TOOL_NAME, `${server} / ${JSON.stringify(tool)} → ${name}`);
  }
});

test('plain tools keep <server>__<tool>; others get their valid characters plus a hash', () => {
  const names = exposedNames('github', ['create_issue', 'files.read', LONG]);
  assert.equal(names.get('create_issue'), 'github__create_issue');
  assert.match(names.get('files.read')!, /^github__files_read_[a-z2-7]{8}$/);
  const long = names.get(LONG)!;
  assert.equal(long.length, 64);
  assert.ok(long.startsWith('github__a_very_long_tool_name'));
  assert.match(long, /_[a-z2-7]{8}$/);
});

test('names are deterministic: the same whatever the order of the tool list, and across calls', () => {
  const a = exposedNames('srv', WEIRD_TOOLS);
  const b = exposedNames('srv', [...WEIRD_TOOLS].reverse());
  assert.deepEqual([...a.entries()].sort(), [...b.entries()].sort());
  assert.equal(nameHash('srv/files.read', 8), nameHash('srv/files.read', 8));
  // One tool's name does not depend on which other tools exist, unless they collide.
  assert.equal(exposedNames('srv', ['files.read']).get('files.read'), a.get('files.read'));
});

test('collisions: a plain name equal to another tool\'s hashed form keeps its name; the other gets a longer hash', () => {
  const hashed = baseExposedName('srv', 'files.read'); // srv__files_read_<hash8>
  const impostor = hashed.slice('srv__'.length);
  const names = exposedNames('srv', ['files.read', impostor]);
  assert.equal(names.get(impostor), hashed, 'the tool whose own name is portable keeps it');
  assert.match(names.get('files.read')!, /^srv__files_read_[a-z2-7]{16}$/);
  assert.notEqual(names.get('files.read'), names.get(impostor));
});

test('server names that are long, contain "__" or end with "_" get a short hashed prefix without "__"', () => {
  for (const server of ['x'.repeat(63), 'a__b', 'ends_']) {
    const p = serverPrefix(server);
    assert.ok(p.length <= 32 && !p.includes('__') && !p.endsWith('_'), `${server} → ${p}`);
    assert.match(p, /_[a-z2-7]{8}$/);
  }
  assert.equal(serverPrefix('github'), 'github');
  // "a__b" and "a" do not share names: "a__b__c" is not ambiguous.
  assert.notEqual(baseExposedName('a__b', 'c'), baseExposedName('a', 'b__c'));
});

test('parseCallName: plain names resolve without the tool list; hashed ones need it; <server>/<tool> is always accepted', () => {
  const servers = new Map([[serverPrefix('github'), 'github'], [serverPrefix('a__b'), 'a__b']]);
  assert.deepEqual(parseCallName('github__create_issue', servers), { server: 'github', tool: 'create_issue' });
  assert.deepEqual(parseCallName('github__a__b', servers), { server: 'github', tool: 'a__b' });
  assert.deepEqual(parseCallName('github/files.read', servers), { server: 'github', tool: 'files.read' });
  assert.deepEqual(parseCallName(baseExposedName('github', 'files.read'), servers), { server: 'github', tool: undefined });
  assert.deepEqual(parseCallName(baseExposedName('a__b', 'c'), servers), { server: 'a__b', tool: 'c' });
  for (const bad of ['', 'github', 'github__', '__x', 'nosuch__tool', '/x', 'github/', 'github__files.read']) {
    const r = parseCallName(bad, servers);
    assert.ok(r === undefined || r.tool === undefined || bad.includes('/'), `${bad}: ${JSON.stringify(r)}`);
  }
  assert.equal(parseCallName('nosuch__tool', servers), undefined);
});

test('tool_name_format server/tool keeps the legacy names', () => {
  assert.equal(exposedNames('github', ['create_issue']).get('create_issue'), 'github__create_issue');
  assert.equal(exposedNames('github', ['create_issue'], 'server/tool').get('create_issue'), 'github/create_issue');
});
