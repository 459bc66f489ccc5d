/**
 * The pods Tessera issued agent tokens to (`k8s_pods`, migration 340), and the revocation of a
 * deleted one (docs/k8s-pods.md, ADR 0266).
 *
 * - `seen`: called by attestation before a pod's agent token is issued. A pod's first sighting
 *   on this replica is written at once (so a watch on ANY replica that sees the pod go finds it),
 *   and again only when the pod presents a service-account token that lives more than a minute
 *   longer than the one recorded (what the revocation's lifetime must cover); a bounded map
 *   (100,000 uids, cleared when full) remembers what this replica wrote.
 * - `revoke`: claims the pod (`revoked_at` set where it was NULL: exactly one replica wins), then
 *   records a `pod` revocation through the revocation service (audited, fanned out to the other
 *   replicas like every revocation), which refuses every token whose acting agent runs in the pod
 *   and revokes its leases and those of its task subtrees; then a `task` revocation for each live
 *   task the pod's agents opened that has children (their tokens act for other identities).
 */
import type { Store } from '../../store/port.js';
import type { Clock } from '../../shared/clock.js';
import type { AuditActor } from '../../audit/events.js';
import type { AttestedIdentity } from '../../identity/types.js';
import type { RevocationService } from '../../revocations/index.js';
import { POD_UID } from '../../shared/principal.js';

/** The pod a watch event or a relist names. */
export interface PodRef {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
}

/** Why a pod is revoked: a DELETED watch event, or absent from a relist after a disconnection. */
export type PodRevokeCause = 'deleted' | 'missing_on_relist';

export interface PodRevokeResult {
  /** False when another replica (or an earlier event) already revoked it, or Tessera never saw it. */
  readonly revoked: boolean;
  readonly revocationId?: string;
  readonly tasks?: number;
}

export interface PodRegistry {
  seen(identity: AttestedIdentity, tokenValidUntil: number): Promise<void>;
  /** Revokes a pod Tessera issued tokens to; a pod it never saw is ignored. */
  revoke(pod: PodRef, cause: PodRevokeCause): Promise<PodRevokeResult>;
  /** The pods still open (not revoked), optionally of one namespace: what a relist reconciles. At most `limit`. */
  open(namespace?: string, limit?: number): Promise<PodRef[]>;
}

export interface PodRegistryDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly revocations: Pick<RevocationService, 'revoke'>;
  /** `kubernetes.pod_revocation_ttl` (ms). */
  readonly revocationTtlMs: number;
  /** Live tasks revoked per pod at most (the rest expire within the task TTL). Default 1000. */
  readonly maxTasksPerPod?: number;
}

export const POD_WATCH_ACTOR: AuditActor = { id: 'system:k8s-pod-watch' };

export function createPodRegistry(deps: PodRegistryDeps): PodRegistry {
  const { store, clock } = deps;
  /** uid → the token expiry already recorded (epoch ms); bounded: cleared when full. */
  const recorded = new Map<string, number>();

  return {
    async seen(identity, tokenValidUntil) {
      const uid = identity.attributes.pod_uid;
      if (uid === undefined || !POD_UID.test(uid)) return;
      const known = recorded.get(uid);
      // A later token of the same pod only matters for how long its revocation must last.
      if (known !== undefined && known >= tokenValidUntil - 60_000) return;
      const now = clock.now();
      const ns = identity.attributes.namespace ?? '';
      const name = identity.attributes.pod ?? '';
      await store.run(
        `INSERT INTO k8s_pods (uid, namespace, name, spiffe_id, first_seen, last_seen, token_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (uid) DO UPDATE SET last_seen = excluded.last_seen,
           token_expires_at = CASE WHEN excluded.token_expires_at > k8s_pods.token_expires_at THEN excluded.token_expires_at ELSE k8s_pods.token_expires_at END`,
        [uid, ns, name, identity.spiffeId, now, now, Math.round(tokenValidUntil)],
      );
      if (recorded.size >= 100_000) recorded.clear();
      recorded.set(uid, tokenValidUntil);
    },

    async revoke(pod, cause) {
      if (!POD_UID.test(pod.uid)) return { revoked: false };
      const now = clock.now();
      // Exactly one replica (and one event) wins the claim.
      const { changes } = await store.run('UPDATE k8s_pods SET revoked_at = ?, revoke_cause = ? WHERE uid = ? AND revoked_at IS NULL', [now, cause, pod.uid]);
      if (changes === 0) return { revoked: false };
      const row = await store.get<{ token_expires_at: number; namespace: string; name: string }>('SELECT token_expires_at, namespace, name FROM k8s_pods WHERE uid = ?', [pod.uid]);
      const expiresAt = Math.max(now + deps.revocationTtlMs, Number(row?.token_expires_at ?? 0));
      const label = `${row?.namespace ?? pod.namespace}/${row?.name ?? pod.name}`.slice(0, 300);
      const reason = cause === 'deleted' ? `pod ${label} deleted (kubernetes watch)` : `pod ${label} gone: absent from the pod list after the watch reconnected`;
      let created;
      try {
        created = await deps.revocations.revoke({ kind: 'pod', target: pod.uid, reason, expiresAt, actor: POD_WATCH_ACTOR });
      } catch (e) {
        // Not recorded (audit or store down): release the claim so a retry (next relist) tries again.
        if ((e as { details?: { revocation_id?: unknown } }).details?.revocation_id === undefined) {
          await store.run('UPDATE k8s_pods SET revoked_at = NULL, revoke_cause = NULL WHERE uid = ?', [pod.uid]).catch(() => undefined);
        }
        throw e;
      }
      // Task trees below the pod's tasks act for other identities: revoke those tasks (subtrees).
      const tasks = await store.all<{ txn: string }>(
        `SELECT t.txn FROM tasks t WHERE t.pod_uid = ? AND t.expires_at > ? AND EXISTS (SELECT 1 FROM tasks c WHERE c.parent = t.txn) ORDER BY t.created_at LIMIT ?`,
        [pod.uid, now, deps.maxTasksPerPod ?? 1000],
      );
      for (const t of tasks) await deps.revocations.revoke({ kind: 'task', target: t.txn, reason, expiresAt, actor: POD_WATCH_ACTOR });
      return { revoked: true, revocationId: created.id, tasks: tasks.length };
    },

    async open(namespace, limit = 100_000) {
      const rows = await store.all<{ uid: string; namespace: string; name: string }>(
        `SELECT uid, namespace, name FROM k8s_pods WHERE revoked_at IS NULL ${namespace ? 'AND namespace = ?' : ''} LIMIT ?`,
        namespace ? [namespace, limit] : [limit],
      );
      return rows.map((r) => ({ uid: r.uid, namespace: r.namespace, name: r.name }));
    },
  };
}
