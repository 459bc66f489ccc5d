/**
 * Child process for postgres-crash.test.ts: plays the Tessera server, issuing postgres
 * credentials in a loop (8 in flight) against a file-backed SQLite store, until it is killed
 * with SIGKILL. Bounded: stops by itself after 3000 issuances or 30 s.
 */
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { systemClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createKeySealer } from '../../src/secrets/sealer.js';
import { createLeaseService } from '../../src/leases/index.js';
import { createPostgresEngine } from '../../src/engines/postgres/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';

const file = process.env.CRASH_STORE!;
const key = Buffer.from(process.env.CRASH_KEY!, 'hex');
const store = openSqliteStore({ file });
await store.migrate();
const audit = new MemoryAuditWriter();
const postgres = createPostgresEngine({ store, sealer: createKeySealer(key, 'crash-key'), clock: systemClock, logger: silentLogger, audit });
await postgres.start();
const leases = createLeaseService({ store, clock: systemClock, audit, engines: [postgres.engine] });
await leases.recover();
const principal = { spiffeId: 'spiffe://example.org/crash', trustDomain: 'example.org', path: '/crash', attributes: {}, jti: 'jti-crash', expiresAt: Date.now() + 3_600_000 };
let issued = 0;
const deadline = Date.now() + 30_000;
async function worker(): Promise<void> {
  while (issued < 3000 && Date.now() < deadline) {
    await leases.issue({ engine: 'postgres', role: 'crash-reader', principal });
    issued++;
    if (issued % 10 === 0) process.stdout.write(`issued ${issued}\n`);
  }
}
await Promise.all(Array.from({ length: 8 }, worker));
process.stdout.write('done\n');
await postgres.stop();
await store.close();
