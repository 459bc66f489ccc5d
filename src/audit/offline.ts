import { accessSync, constants, statSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import type { Store } from '../store/port.js';
import { TesseraError } from '../shared/errors.js';
import { checkpointKeyId } from './chain.js';
import { NOTE_NO_WITNESS, verifyStore, type StoreVerifyResult } from './verify.js';
import { checkWitnessFile, createWitnessChecker, withWitness, type WitnessReport } from './witness.js';

export type AuditVerifyReport = StoreVerifyResult & { witness?: Omit<WitnessReport, 'problems'> };

/** Fails early (before a long verification) when a path the operator gave cannot be used. */
export function checkVerifyInputs(o: { witnessPath?: string; archiveDir?: string }): void {
  if (o.witnessPath !== undefined) {
    try {
      accessSync(o.witnessPath, constants.R_OK);
      if (!statSync(o.witnessPath).isFile()) throw new Error('not a file');
    } catch (e) {
      throw new TesseraError('TESSERA_AUDIT_WITNESS_UNREADABLE', `the witness file ${o.witnessPath} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  if (o.archiveDir !== undefined) {
    try {
      accessSync(o.archiveDir, constants.R_OK | constants.X_OK);
      if (!statSync(o.archiveDir).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new TesseraError('TESSERA_AUDIT_ARCHIVE_DIR_UNREADABLE', `the archive directory ${o.archiveDir} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
}

/**
 * Full verification with direct access to the store (offline CLI, tests): the chain, the
 * archives when `archiveDir` is given, and the witness when `witnessPath` is given.
 */
export async function verifyAuditLocal(o: { store: Store; publicKey: KeyObject; witnessPath?: string; archiveDir?: string; pageSize?: number; onProgress?: (checked: number) => void }): Promise<AuditVerifyReport> {
  checkVerifyInputs(o);
  const result = await verifyStore({ store: o.store, publicKey: o.publicKey, ...(o.archiveDir !== undefined ? { archiveDir: o.archiveDir } : {}), ...(o.pageSize ? { pageSize: o.pageSize } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
  if (o.witnessPath === undefined) return result;
  const checker = createWitnessChecker({ db: o.store, publicKey: o.publicKey, keyId: checkpointKeyId(o.publicKey) });
  const w = await checkWitnessFile(o.witnessPath, checker);
  return withWitness(result, w, NOTE_NO_WITNESS);
}
