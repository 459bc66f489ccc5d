import type { TesseraConfig } from '../config/index.js';
import type { Store } from '../store/port.js';
import { systemClock } from '../shared/clock.js';
import { silentLogger } from '../shared/logger.js';
import { TesseraError } from '../shared/errors.js';
import { resolveMasterKey } from '../secrets/index.js';
import { archiveAudit, type ArchiveResult } from './archive.js';
import { checkpointKeyId } from './chain.js';
import { checkpointPublicKey, META_CHECKPOINT_KEY } from './log.js';
import { verifyAuditLocal, type AuditVerifyReport } from './offline.js';
import { privateKeyFromDer } from './chain.js';
import { signStatement } from './statements.js';

/**
 * `tessera audit verify --offline` and `tessera audit archive --offline`: on the data directory,
 * without a server. The checkpoint key (public, and private for archiving) comes from the sealed
 * key in meta, so it needs the master key — never from the clear copy in the database, which
 * whoever could edit the events could also replace. Closes `store`.
 */
export async function verifyAuditOffline(o: { config: TesseraConfig; store: Store; witness?: string; archiveDir?: string }): Promise<AuditVerifyReport> {
  try {
    await o.store.migrate();
    const master = resolveMasterKey({ config: o.config.master_key, dataDir: o.config.data_dir, dev: false, env: process.env });
    const publicKey = await checkpointPublicKey(o.store, master.sealer);
    return await verifyAuditLocal({
      store: o.store,
      publicKey,
      pageSize: o.config.audit.verify.page_size,
      ...(o.witness !== undefined ? { witnessPath: o.witness } : {}),
      ...(o.archiveDir !== undefined ? { archiveDir: o.archiveDir } : {}),
    });
  } finally {
    await o.store.close();
  }
}

/** Stop the server first when it uses the same SQLite file: the archive lock is per process there. */
export async function archiveAuditOffline(o: { config: TesseraConfig; store: Store; archiveDir?: string }): Promise<ArchiveResult> {
  const retention = o.config.audit.retention;
  const archiveDir = o.archiveDir ?? retention?.archive_dir;
  if (!archiveDir) throw new TesseraError('TESSERA_AUDIT_ARCHIVE_NOT_CONFIGURED', 'archiving needs audit.retention.archive_dir in tessera.yaml, or --archive-dir');
  try {
    await o.store.migrate();
    const master = resolveMasterKey({ config: o.config.master_key, dataDir: o.config.data_dir, dev: false, env: process.env });
    const row = await o.store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [META_CHECKPOINT_KEY]);
    if (!row) throw new TesseraError('TESSERA_AUDIT_KEY_UNAVAILABLE', 'no audit checkpoint key in this store: nothing has been audited yet');
    let der: Buffer;
    try {
      der = master.sealer.open(Buffer.from(row.value, 'base64'), META_CHECKPOINT_KEY);
    } catch (e) {
      throw new TesseraError('TESSERA_AUDIT_KEY_UNAVAILABLE', `cannot open ${META_CHECKPOINT_KEY} with master key ${master.sealer.keyId}`, undefined, { cause: e });
    }
    const privateKey = privateKeyFromDer(der);
    der.fill(0);
    const publicKey = await checkpointPublicKey(o.store, master.sealer);
    return await archiveAudit({
      store: o.store,
      publicKey,
      keyId: checkpointKeyId(publicKey),
      sign: (type, payload) => signStatement(privateKey, type, payload),
      clock: systemClock,
      logger: silentLogger,
      pageSize: o.config.audit.verify.page_size,
      policy: {
        archiveDir,
        keepEvents: retention?.keep_events ?? 100_000,
        keepForMs: retention?.keep_for ?? 30 * 86_400_000,
        segmentEvents: retention?.segment_events ?? 1_000_000,
      },
    });
  } finally {
    await o.store.close();
  }
}
