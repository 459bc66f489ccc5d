import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { runStoreConformance } from './conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-conf-'));
let fresh = 0;
after(() => rmSync(dir, { recursive: true, force: true }));

// Both "replicas" open the same file in this process: SQLite is embedded (one process owns the
// file), so fan-out and leader locks are per process and concurrent transactions come from one store.
// Default engine: commits fsync on libuv's thread pool (ADR 0005).
runStoreConformance('sqlite', async () => openSqliteStore({ file: join(dir, 'shared.db') }), {
  concurrentReplicas: false,
  openFreshStore: async () => openSqliteStore({ file: join(dir, `fresh-${++fresh}.db`) }),
});

// The other engines (options): same contract.
for (const engine of ['main'] as const) {
  runStoreConformance(`sqlite (${engine} engine)`, async () => openSqliteStore({ file: join(dir, `shared-${engine}.db`), engine }), {
    concurrentReplicas: false,
    openFreshStore: async () => openSqliteStore({ file: join(dir, `fresh-${++fresh}.db`), engine }),
  });
}
