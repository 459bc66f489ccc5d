import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

// The SDK is consumed as `import { TesseraClient } from 'tessera-broker/sdk'` (package.json "exports",
// built by `npm install`'s prepare step into dist/).
test('tessera-broker/sdk resolves through package exports and exposes the client and typed errors', { skip: existsSync('dist/src/sdk/index.js') ? false : 'dist not built (run npm run build)' }, async () => {
  const sdk = (await import('tessera-broker/sdk' as string)) as Record<string, unknown>;
  assert.equal(typeof sdk.TesseraClient, 'function');
  assert.equal(typeof sdk.TesseraApiError, 'function');
});
