/**
 * Suite-wide leak scan (issue: "a test serializes every event kind produced during the test
 * suite and scans for every secret and token the suite used"). When scripts/run-tests.mjs sets
 * TESSERA_TEST_LEAK_DIR, every audit event a test produces (through the test audit writer or the
 * e2e harness) and every secret/token a test registers is appended there; after the run,
 * scripts/leak-scan.ts looks for every registered value, and for anything token-shaped, in every
 * serialized event.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.TESSERA_TEST_LEAK_DIR;

export function registerSensitive(...values: string[]): void {
  if (!dir) return;
  const lines = values.filter((v) => typeof v === 'string' && v.length >= 8).map((v) => JSON.stringify(v));
  if (lines.length) appendFileSync(join(dir, `sensitive-${process.pid}.jsonl`), `${lines.join('\n')}\n`);
}

export function recordAuditEvents(serialized: readonly string[]): void {
  if (!dir || serialized.length === 0) return;
  appendFileSync(join(dir, `events-${process.pid}.jsonl`), `${serialized.map((s) => s.replace(/\n/g, ' ')).join('\n')}\n`);
}
