/** Shared by the k8s scan tests: the fixture, its raw secret values, and the real CLI run in-process. */
import { readFileSync } from 'node:fs';
import { runCli, type CliIo, type Runtime } from '../../../src/cli/index.js';

export const FIXTURE = 'test/k8s/scan/fixtures/cluster.json';
/** `kubectl get pods,secrets,networkpolicies -A -o json` shape (a List); see fixtures/README.md. */
export const cluster = (): { kind: string; apiVersion: string; items: Record<string, any>[]; metadata: unknown } => JSON.parse(readFileSync(FIXTURE, 'utf8'));
/** Every credential value in the fixture: literal env values and Secret data (decoded). */
export const SECRET_VALUES: { literal: string[]; secret_data: string[] } = JSON.parse(readFileSync('test/k8s/scan/fixtures/secret-values.json', 'utf8'));

const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tessera <argv>` in-process; `stdin` feeds `-f -`. */
export async function run(argv: string[], opts: { stdin?: string | Buffer | AsyncIterable<Uint8Array>; tty?: boolean; env?: Record<string, string> } = {}): Promise<Run> {
  const out = { stdout: '', stderr: '' };
  const io: CliIo = {
    stdout: { write: (s: string) => (out.stdout += s) },
    stderr: { write: (s: string) => (out.stderr += s), ...(opts.tty ? { isTTY: true } : {}) },
    env: opts.env ?? {},
    ...(opts.stdin !== undefined
      ? { stdin: typeof opts.stdin === 'string' || Buffer.isBuffer(opts.stdin) ? (async function* (b: Buffer) { yield b; })(Buffer.from(opts.stdin)) : opts.stdin }
      : {}),
  };
  const code = await runCli(argv, runtime, io);
  return { code, ...out };
}

/** Every value that must never appear, in the spellings an output could carry it: as is, base64, JSON-escaped. */
export function leakedValues(text: string): string[] {
  const all = [...SECRET_VALUES.literal, ...SECRET_VALUES.secret_data];
  const forms = (v: string): string[] => [v, Buffer.from(v).toString('base64'), JSON.stringify(v).slice(1, -1), ...v.split('\n').filter((l) => l.length >= 12)];
  return all.filter((v) => forms(v).some((f) => text.includes(f)));
}
