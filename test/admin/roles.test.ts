import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRole, roleAllows } from '../../src/admin/roles.js';
import { TesseraError } from '../../src/shared/errors.js';

test('roleAllows: admin everything; auditor safe methods and read-only routes, never a secret value', () => {
  const cases: [string, { readOnly?: boolean; revealsSecret?: boolean } | undefined, boolean][] = [
    ['GET', undefined, true],
    ['HEAD', undefined, true],
    ['get', {}, true],
    ['POST', undefined, false],
    ['POST', { readOnly: true }, true],
    ['PUT', undefined, false],
    ['PUT', { readOnly: true }, true],
    ['DELETE', undefined, false],
    ['PATCH', undefined, false],
    ['OPTIONS', undefined, false],
    ['GET', { revealsSecret: true }, false],
    ['HEAD', { revealsSecret: true }, false],
    ['POST', { readOnly: true, revealsSecret: true }, false],
  ];
  for (const [method, config, auditor] of cases) {
    assert.equal(roleAllows('auditor', method, config), auditor, `auditor ${method} ${JSON.stringify(config)}`);
    assert.equal(roleAllows('admin', method, config), true, `admin ${method} ${JSON.stringify(config)}`);
  }
});

test('checkRole: 403 TESSERA_ADMIN_ROLE_FORBIDDEN saying what the auditor may do', () => {
  checkRole({ role: 'admin' }, { revealsSecret: true }, 'GET');
  checkRole({ role: 'auditor' }, undefined, 'GET');
  const refused = (config: { revealsSecret?: boolean } | undefined, method: string, message: RegExp) =>
    assert.throws(() => checkRole({ role: 'auditor' }, config, method), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_ADMIN_ROLE_FORBIDDEN' && e.status === 403 && message.test(e.message));
  refused(undefined, 'DELETE', /may read but not change anything; use an admin token/);
  refused({ revealsSecret: true }, 'GET', /never a secret value; use an admin token/);
});
