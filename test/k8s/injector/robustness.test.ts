/**
 * `tessera injector` under inputs nobody wrote on purpose, over real HTTPS: a bounded,
 * seeded fuzz of AdmissionReviews (fields deleted, retyped, nested, huge strings) never gets a
 * 5xx and always gets either an AdmissionReview for its uid or a JSON error with a stable
 * code; and a request in flight when SIGTERM arrives is still answered (an admission cut off
 * mid-way is a refused pod under failurePolicy: Fail).
 *
 * No Kubernetes API server can run here; fixtures.ts stands in for what it sends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { AGENT, barePod, deploymentPod, initPod, review } from './fixtures.js';
import { startInjectorCli } from './harness.js';

/** Mulberry32: a small seeded PRNG, so a failure reproduces. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = unknown;
const ODD: Json[] = [null, true, 0, -1, 1e308, '', 'x'.repeat(5000), '\u0000\u202e\n', [], {}, [[[[]]]], { __proto__: { polluted: true } }, 'tessera.io/inject', 'CREATE'];

/** One random mutation at a random place of `v`. */
function mutate(v: Json, rnd: () => number, depth = 0): Json {
  if (v === null || typeof v !== 'object' || depth > 12 || rnd() < 0.15) return ODD[Math.floor(rnd() * ODD.length)];
  if (Array.isArray(v)) {
    if (v.length === 0 || rnd() < 0.1) return [...v, ODD[Math.floor(rnd() * ODD.length)]];
    const i = Math.floor(rnd() * v.length);
    return v.map((x, j) => (j === i ? mutate(x, rnd, depth + 1) : x));
  }
  const keys = Object.keys(v);
  if (keys.length === 0) return { k: ODD[Math.floor(rnd() * ODD.length)] };
  const k = keys[Math.floor(rnd() * keys.length)]!;
  const out: Record<string, Json> = { ...(v as Record<string, Json>) };
  if (rnd() < 0.2) delete out[k];
  else out[k] = mutate(out[k], rnd, depth + 1);
  return out;
}

test('seeded fuzz of AdmissionReviews: never a 5xx, always an AdmissionReview for the uid or a coded JSON error', async () => {
  const inj = await startInjectorCli();
  try {
    const rnd = prng(0x7e55e7a);
    const bases = [review(barePod()), review(deploymentPod()), review(initPod({ ...AGENT, 'tessera.io/proxy': 'true', 'tessera.io/ca-bundle': 'true', 'tessera.io/task-scope': 'tool:a/b' }))];
    const counts = { allowed: 0, denied: 0, error: 0 };
    for (let i = 0; i < 400; i++) {
      let v: Json = bases[i % bases.length];
      for (let m = 1 + Math.floor(rnd() * 3); m > 0; m--) v = mutate(v, rnd);
      const a = await inj.post(v);
      assert.ok(a.status < 500, `case ${i}: ${a.status} ${JSON.stringify(a.json).slice(0, 300)}`);
      if (a.status === 200) {
        const r = a.json.response as { uid: unknown; allowed: boolean; status?: { message: string } };
        assert.equal(a.json.kind, 'AdmissionReview', `case ${i}`);
        assert.equal(r.uid, (v as { request: { uid: unknown } }).request.uid, `case ${i}: the response answers the request's uid`);
        if (r.allowed) counts.allowed++;
        else {
          counts.denied++;
          assert.match(r.status!.message, /\[TESSERA_INJECTOR_[A-Z_]+\]$/, `case ${i}`);
        }
      } else {
        counts.error++;
        assert.equal(a.status, 400, `case ${i}`);
        assert.match((a.json.error as { code: string }).code, /^TESSERA_INJECTOR_REVIEW_(INVALID|MALFORMED)$/, `case ${i}`);
      }
    }
    // The fuzz reached every kind of answer (else it tests less than it claims).
    assert.ok(counts.allowed > 5 && counts.denied > 20 && counts.error > 20, JSON.stringify(counts));
  } finally {
    assert.equal(await inj.stop(), 0);
  }
});

test('a request in flight when SIGTERM arrives is answered (then the connection closes) before the injector exits', async () => {
  const started = Date.now();
  const inj = await startInjectorCli();
  const u = new URL(inj.url);
  const body = Buffer.from(JSON.stringify(review(barePod())));
  const socket = connect({ host: u.hostname, port: Number(u.port), ca: inj.ca.certPem });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  let answer = '';
  socket.on('data', (c: Buffer) => (answer += c.toString()));
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.write(`POST /mutate HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  socket.write(body.subarray(0, 100));
  await new Promise((r) => setTimeout(r, 100));
  inj.terminate(); // the injector stops listening, the request is still in flight
  await new Promise((r) => setTimeout(r, 100));
  socket.write(body.subarray(100));
  const exit = inj.stop();
  await ended;
  assert.match(answer, /^HTTP\/1\.1 200 /);
  assert.match(answer, /"allowed":true,"patchType":"JSONPatch"/);
  assert.match(answer, /\r\nconnection: close\r\n/i, 'the answer closes the connection');
  assert.equal(await exit, 0);
  assert.ok(Date.now() - started < 4000, 'no wait for the 5 s drain bound: the connection closed with the answer');
});
