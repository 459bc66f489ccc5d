import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { AuditWriter } from '../audit/port.js';
import { fail, isTesseraError } from '../shared/errors.js';
import { silentLogger } from '../shared/logger.js';
import { checkRequestSchema, toPolicyRequest } from './check.js';
import { createPolicyEngine } from './engine.js';
import { formatPolicyError } from './loader.js';

const caseSchema = checkRequestSchema.extend({
  name: z.string().min(1).max(256),
  expect: z.enum(['allow', 'deny']),
  /** Optional: these policy ids must be among the ones that decided. */
  policies: z.array(z.string()).optional(),
});

const fileSchema = z
  .object({
    /** Policy directory, relative to the test file. Default: the test file's directory. */
    policies: z.string().optional(),
    cases: z.array(z.unknown()).min(1).max(10_000),
  })
  .strict();

export interface PolicyTestCaseResult {
  readonly name: string;
  readonly pass: boolean;
  readonly expected: 'allow' | 'deny';
  readonly actual?: 'allow' | 'deny';
  readonly policies: readonly string[];
  readonly errors: readonly string[];
  /** Why the case failed, in words. */
  readonly reason?: string;
}

export interface PolicyTestReport {
  readonly ok: boolean;
  readonly passed: number;
  readonly failed: number;
  readonly policyDir: string;
  readonly cases: readonly PolicyTestCaseResult[];
}

const nullAudit: Pick<AuditWriter, 'append'> = { append: async () => undefined };

/**
 * `tessera policy test <file>`: runs a YAML table of expected decisions against a policy
 * directory. Throws TESSERA_POLICY_INVALID when the policies do not load, and
 * TESSERA_REQUEST_INVALID when the table itself is malformed; case failures are data.
 */
export async function runPolicyTests(opts: { testFile: string; policyDir?: string }): Promise<PolicyTestReport> {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(opts.testFile, 'utf8'));
  } catch (e) {
    throw fail('TESSERA_REQUEST_INVALID', `cannot read policy test file ${opts.testFile}: ${(e as Error).message}`);
  }
  const parsed = fileSchema.safeParse(doc);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw fail('TESSERA_REQUEST_INVALID', `${opts.testFile}: ${i.path.join('.') || 'document'}: ${i.message} (expected { policies?: <dir>, cases: [...] })`);
  }
  const policyDir = opts.policyDir ?? resolve(dirname(opts.testFile), parsed.data.policies ?? '.');
  const engine = createPolicyEngine({ dir: policyDir, clock: { now: () => 0 }, logger: silentLogger, audit: nullAudit, cacheSize: 0, watch: false });
  const loaded = await engine.load();
  if (!loaded.ok) throw fail('TESSERA_POLICY_INVALID', `policies in ${policyDir} do not load:\n${loaded.errors.map(formatPolicyError).join('\n')}`, { errors: loaded.errors });

  const cases: PolicyTestCaseResult[] = parsed.data.cases.map((raw, index) => {
    const label = typeof (raw as { name?: unknown })?.name === 'string' ? (raw as { name: string }).name : `case ${index + 1}`;
    const c = caseSchema.safeParse(raw);
    if (!c.success) {
      const i = c.error.issues[0]!;
      return { name: label, pass: false, expected: 'allow', policies: [], errors: [], reason: `malformed case: ${i.path.join('.') || 'case'}: ${i.message}` };
    }
    const { name, expect, policies: wanted, ...req } = c.data;
    try {
      const e = engine.explain(toPolicyRequest(req));
      const ids = e.policies.map((p) => p.id);
      const missing = (wanted ?? []).filter((w) => !ids.includes(w));
      const pass = e.decision === expect && missing.length === 0;
      const reason = e.decision !== expect ? `expected ${expect}, got ${e.decision}${ids.length ? ` (decided by ${ids.join(', ')})` : ' (no policy matched: default deny)'}` : missing.length ? `expected policies ${missing.join(', ')} to decide; decided by ${ids.join(', ') || 'none'}` : undefined;
      return { name, pass, expected: expect, actual: e.decision, policies: ids, errors: e.errors, ...(reason ? { reason } : {}) };
    } catch (err) {
      return { name, pass: false, expected: expect, policies: [], errors: [], reason: isTesseraError(err) ? `${err.code}: ${err.message}` : String(err) };
    }
  });
  engine.stop();
  const failed = cases.filter((c) => !c.pass).length;
  return { ok: failed === 0, passed: cases.length - failed, failed, policyDir, cases };
}
