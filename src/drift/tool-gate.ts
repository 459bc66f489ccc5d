/**
 * Tool-definition pinning (docs/drift.md "Tool pinning", ADR 0281): the gateway's `ToolGate`.
 *
 * Every upstream tool's definition is digested (digest.ts) once per listing the gateway gets
 * (an upstream's listing is cached per connection until it sends `notifications/tools/list_changed`
 * or reconnects), and held against `drift_pins`:
 *  - never seen: `first_sight: pin` pins it as it is (audited `drift.tool_pinned`);
 *    `require_approval` holds it back until approved (audited `drift.tool_unapproved`);
 *  - the approved digest: served;
 *  - another digest: audited `drift.tool_changed` once per distinct new digest (across replicas:
 *    the conditional update in pins.ts picks one writer), counted in
 *    `tessera_drift_tool_changes_total`; `on_change: block` holds it back (not listed, calls
 *    refused with TESSERA_DRIFT_TOOL_CHANGED), `flag` serves it marked in `_meta`.
 *
 * Cost on tools/list: a listing already checked under the current pin-book version is answered
 * from a WeakMap by the array's identity (no digest, no store access); a new listing costs one
 * SHA-256 per tool plus a map lookup, and store writes only on a state change.
 */
import type { AuditActor, AuditWhere } from '../audit/events.js';
import type { AuditWriter } from '../audit/port.js';
import type { GatedListing, GatewayTool, ToolGate } from '../gateway/types.js';
import type { Clock } from '../shared/clock.js';
import { TesseraError, fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Counter, MetricsRegistry } from '../shared/metrics.js';
import type { Store } from '../store/port.js';
import type { DriftConfig } from './config.js';
import { changedFields, toolDigest, toolDigestOnly, type ToolDigest } from './digest.js';
import { approveObserved, clearObserved, getPin, insertPin, loadPins, observePin, type Pin } from './pins.js';

/** The `_meta` key a flagged tool carries (docs/drift.md). */
export const DRIFT_META_KEY = 'io.tessera/drift';

/** Distinct definitions whose digest is remembered by their JSON text (cleared when full). */
const MAX_TEXT_CACHE = 10_000;

/** `<server>/<tool>`: a server name as gateway config allows, then an MCP tool name (SEP-986). */
const TOOL_REF = /^([a-z0-9][a-z0-9_-]{0,62})\/([A-Za-z0-9_.-]{1,128})$/;

export interface ToolPinView {
  readonly name: string;
  readonly status: 'approved' | 'changed' | 'unapproved';
  readonly approved_digest: string | null;
  readonly approved_at: string | null;
  readonly approved_by: string | null;
  readonly observed_digest: string | null;
  readonly observed_at: string | null;
  /** The pinned fields that differ (changed), or every field present (unapproved). */
  readonly changed_fields: readonly string[];
  readonly first_seen_at: string;
}

export interface ToolPinning extends ToolGate {
  /** Every pinned or pending tool (bounded by MAX_PINS), sorted by name. */
  list(): Promise<ToolPinView[]>;
  /** Accepts the current (observed) definition of `<server>/<tool>`; `digest` guards against a newer change. */
  approve(name: string, opts: { digest?: string; actor: AuditActor; where?: AuditWhere }): Promise<ToolPinView>;
  /** Re-reads the pins (another replica approved; periodic safety net). */
  reload(): Promise<void>;
  /** Bumped by every change of the pin book: listings checked before are checked again. */
  readonly version: number;
}

export interface ToolPinningDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  readonly config: DriftConfig['tools'];
  /** Tells other replicas to reload (store fan-out); called after an approval. */
  readonly announce?: () => void;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Parses `<server>/<tool>`; throws TESSERA_DRIFT_TOOL_NAME_INVALID. */
export function parseToolRef(name: unknown): { server: string; tool: string } {
  const m = typeof name === 'string' ? TOOL_REF.exec(name) : null;
  if (!m) throw fail('TESSERA_DRIFT_TOOL_NAME_INVALID', `tool: expected <server>/<tool> (e.g. github/create_issue), got ${typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name}`, { field: 'tool' });
  return { server: m[1]!, tool: m[2]! };
}

export function viewOf(p: Pin): ToolPinView {
  const status = p.approvedDigest === null ? 'unapproved' : p.observedDigest !== null ? 'changed' : 'approved';
  return {
    name: p.subject,
    status,
    approved_digest: p.approvedDigest,
    approved_at: iso(p.approvedAt),
    approved_by: p.approvedBy,
    observed_digest: p.observedDigest,
    observed_at: iso(p.observedAt),
    changed_fields: status === 'approved' ? [] : changedFields(p.approvedParts, p.observedParts),
    first_seen_at: new Date(p.firstSeenAt).toISOString(),
  };
}

export function createToolPinning(deps: ToolPinningDeps): ToolPinning {
  const { store, clock, audit, config } = deps;
  const book = new Map<string, Pin>();
  let version = 0;
  let loaded: Promise<void> | undefined;
  const checked = new WeakMap<readonly GatewayTool[], { version: number; result: GatedListing }>();
  /** Whole digests by tool object (a cached listing), then by the definition's JSON text (a new listing of known definitions). */
  const digests = new WeakMap<GatewayTool, string>();
  const byText = new Map<string, string>();
  const changes: Counter | undefined = deps.metrics?.counter('tessera_drift_tool_changes_total', 'Upstream tool definitions seen changed since their approval (each distinct change once), by handling');
  const system: AuditActor = { id: 'system' };

  async function reload(): Promise<void> {
    const pins = await loadPins(store, 'tool');
    book.clear();
    for (const p of pins) book.set(p.subject, p);
    version++;
  }
  const ensureLoaded = (): Promise<void> => (loaded ??= reload().catch((e: unknown) => {
    loaded = undefined;
    throw e;
  }));

  /**
   * The whole digest, computed once per distinct definition: a new listing of definitions seen
   * before costs one native JSON.stringify and a map lookup per tool (the text is only a cache key:
   * the digest itself is over the canonical form, so key order never makes a change).
   */
  const digestOf = (t: GatewayTool): string => {
    let d = digests.get(t);
    if (d) return d;
    const text = JSON.stringify([t.name, t.title, t.description, t.inputSchema, t.outputSchema, t.annotations]);
    d = byText.get(text);
    if (!d) {
      d = toolDigestOnly(t);
      if (byText.size >= MAX_TEXT_CACHE) byText.clear();
      byText.set(text, d);
    }
    digests.set(t, d);
    return d;
  };

  async function refresh(subject: string): Promise<Pin | undefined> {
    const p = await getPin(store, 'tool', subject);
    if (p) book.set(subject, p);
    version++;
    return p;
  }

  const held = (server: string, tool: string, p: Pin, d: ToolDigest): Error =>
    p.approvedDigest === null
      ? new TesseraError('TESSERA_DRIFT_TOOL_UNAPPROVED', `${server}/${tool} has not been approved yet (drift.tools.first_sight: require_approval); an operator approves it with \`tessera gateway tools approve ${server}/${tool}\``, { tool: `${server}/${tool}`, digest: d.digest })
      : new TesseraError('TESSERA_DRIFT_TOOL_CHANGED', `the definition of ${server}/${tool} changed since it was approved (${changedFields(p.approvedParts, d.parts).join(', ')}); it is held back until an operator reviews it and runs \`tessera gateway tools approve ${server}/${tool}\``, { tool: `${server}/${tool}`, approved_digest: p.approvedDigest, observed_digest: d.digest });

  /** Records what was seen (first sight, a change, a revert) and returns the row it is judged by. */
  async function observe(server: string, t: GatewayTool, d: ToolDigest): Promise<Pin> {
    const subject = `${server}/${t.name}`;
    let p = book.get(subject);
    const now = clock.now();
    if (!p) {
      const approved = config.first_sight === 'pin';
      // The pin and its event commit together (ADR 0041); a replica that lost the race writes neither.
      await audit.commit(store, (tx) => insertPin(tx, { kind: 'tool', subject, digest: d.digest, parts: { ...d.parts }, approved, by: 'first-sight', now }), (inserted) => (inserted ? {
        kind: approved ? 'drift.tool_pinned' : 'drift.tool_unapproved', actor: system, action: 'drift.tool.observe', resource: `tool:${subject}`, result: approved ? 'success' : 'deny',
        ...(approved ? {} : { reason: { code: 'TESSERA_DRIFT_TOOL_UNAPPROVED' } }),
        details: { server, tool: t.name, digest: d.digest },
      } : null));
      p = await refresh(subject);
      if (!p) throw fail('TESSERA_STORE_UNAVAILABLE', `drift: the pin of ${subject} could not be read back`);
    }
    if (p.approvedDigest === d.digest) {
      if (p.observedDigest !== null && (await clearObserved(store, 'tool', subject, d.digest))) p = (await refresh(subject)) ?? p;
      return p;
    }
    if (p.observedDigest === d.digest) return p;
    const unapproved = p.approvedDigest === null;
    const event = unapproved
      ? { kind: 'drift.tool_unapproved', actor: system, action: 'drift.tool.observe', resource: `tool:${subject}`, result: 'deny', reason: { code: 'TESSERA_DRIFT_TOOL_UNAPPROVED' }, details: { server, tool: t.name, digest: d.digest } } as const
      : {
        kind: 'drift.tool_changed', actor: system, action: 'drift.tool.observe', resource: `tool:${subject}`, result: config.on_change === 'block' ? 'deny' : 'success',
        reason: { code: 'TESSERA_DRIFT_TOOL_CHANGED' },
        details: { server, tool: t.name, approved_digest: p.approvedDigest!, observed_digest: d.digest, fields: changedFields(p.approvedParts, d.parts), handling: config.on_change },
      } as const;
    // Once per distinct observed digest, across replicas: only the conditional update's winner audits.
    if (await audit.commit(store, (tx) => observePin(tx, { kind: 'tool', subject, digest: d.digest, parts: { ...d.parts }, now }), (won) => (won ? event : null))) {
      if (!unapproved) changes?.inc({ handling: config.on_change });
      deps.logger.warn({ server, tool: t.name, fields: changedFields(p.approvedParts, d.parts), handling: unapproved ? 'held' : config.on_change }, unapproved ? 'drift: an upstream tool awaits approval' : 'drift: an upstream tool definition changed since it was approved');
    }
    return (await refresh(subject)) ?? p;
  }

  async function evaluate(server: string, tools: readonly GatewayTool[]): Promise<GatedListing> {
    await ensureLoaded();
    const served: GatewayTool[] = [];
    const heldBack = new Map<string, Error>();
    let same = true;
    for (const t of tools) {
      const digest = digestOf(t);
      const known = book.get(`${server}/${t.name}`);
      // The common case, without any await: the approved definition, nothing recorded as differing.
      if (known && known.approvedDigest === digest && known.observedDigest === null) {
        served.push(t);
        continue;
      }
      // Anything else is recorded (first sight, a change, a revert): the per-field digests say what changed.
      const d = toolDigest(t);
      const p = await observe(server, t, d);
      if (p.approvedDigest === d.digest) {
        served.push(t);
      } else if (p.approvedDigest !== null && config.on_change === 'flag') {
        same = false;
        served.push({ ...t, _meta: { ...(t._meta ?? {}), [DRIFT_META_KEY]: { status: 'changed', approved_digest: p.approvedDigest, digest: d.digest, fields: changedFields(p.approvedParts, d.parts) } } });
      } else {
        same = false;
        heldBack.set(t.name, held(server, t.name, p, d));
      }
    }
    return { tools: same ? tools : served, held: heldBack };
  }

  return {
    get version() {
      return version;
    },
    async check(server, tools) {
      const c = checked.get(tools);
      if (c && c.version === version) return c.result;
      const result = await evaluate(server, tools);
      // Stored under the version after the evaluation's own writes: the next listing is a hit.
      checked.set(tools, { version, result });
      return result;
    },
    async list() {
      await reload();
      return [...book.values()].map(viewOf);
    },
    async approve(name, opts) {
      const { server, tool } = parseToolRef(name);
      const subject = `${server}/${tool}`;
      const p = await getPin(store, 'tool', subject);
      if (!p) throw fail('TESSERA_DRIFT_TOOL_UNKNOWN', `no tool ${subject} has been seen by the gateway; names are <server>/<tool> as \`tessera gateway tools pending\` lists them`, { tool: subject });
      if (p.observedDigest === null) throw fail('TESSERA_DRIFT_NOTHING_PENDING', `${subject}: its current definition is the approved one (${p.approvedDigest ?? 'none'}); nothing to approve`, { tool: subject });
      const expected = opts.digest ?? p.observedDigest;
      const approved = await audit.commit(store, (tx) => approveObserved(tx, { kind: 'tool', subject, expected, by: opts.actor.id, now: clock.now() }), (ok) => (ok ? {
        kind: 'drift.tool_approved', actor: opts.actor, action: 'drift.tool.approve', resource: `tool:${subject}`, result: 'success',
        ...(opts.where ? { where: opts.where } : {}),
        details: { server, tool, digest: expected, ...(p.approvedDigest ? { previous_digest: p.approvedDigest } : {}) },
      } : null));
      if (!approved) {
        const now = await getPin(store, 'tool', subject);
        throw fail('TESSERA_DRIFT_DIGEST_MISMATCH', `${subject}: the definition pending approval is ${now?.observedDigest ?? 'none'}, not ${expected}; review it again and approve that one`, { tool: subject, observed_digest: now?.observedDigest ?? null });
      }
      const after = await refresh(subject);
      deps.announce?.();
      return viewOf(after!);
    },
    reload,
  };
}
