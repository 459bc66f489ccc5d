/**
 * The task tree of `GET /v1/admin/tasks/:txn` (docs/tasks.md "The task tree") laid out for the
 * console's SVG graph with d3-hierarchy's tidy tree (Reingold–Tilford as refined by Buchheim et
 * al.), left to right: depth grows along x, siblings stack along y, so a wide tree (hundreds of
 * sub-agents under one parent) scrolls vertically. Pure (no DOM): unit-tested under Node.
 */
import { hierarchy, tree } from 'd3-hierarchy';

/** A lease as the tree (and `GET /v1/admin/leases`) returns it: metadata, never a credential. */
export interface TaskLeaseJson {
  lease_id: string;
  engine: string;
  role: string;
  state: string;
  expires_at: string | null;
  revoke_cause?: string | null;
  [k: string]: unknown;
}

/** One audit event of a node (`{ seq, ts, ...event }`). */
export interface TaskEventJson {
  seq: number;
  ts: string;
  kind: string;
  action?: string;
  resource?: string;
  result?: string;
  reason?: { code?: string; message?: string; policies?: string[] };
  [k: string]: unknown;
}

/** A node of `GET /v1/admin/tasks/:txn` (`task`, nested through `children`). */
export interface TaskNodeJson {
  txn: string;
  parent: string | null;
  root: string;
  depth: number;
  max_depth: number;
  state: 'active' | 'expired' | 'revoked';
  sub: string;
  actor: string;
  label: string | null;
  user: string | null;
  /** Scope strings (the API gives a list; older answers one space-separated string). */
  scope: string[] | string;
  purpose: string;
  created_at: string;
  expires_at: string;
  tokens?: { jti_hmac: string; issued_at: string; expires_at: string }[];
  leases?: TaskLeaseJson[];
  events?: TaskEventJson[];
  children?: TaskNodeJson[];
  [k: string]: unknown;
}

/** Size of one node box and the gaps between boxes, in SVG user units (px). */
export const NODE = { width: 260, height: 92, levelGap: 56, siblingGap: 14, margin: 16 } as const;

export interface PlacedNode {
  node: TaskNodeJson;
  /** Top-left corner of the node's box. */
  x: number;
  y: number;
}

export interface Edge {
  key: string;
  /** An SVG path (cubic Bézier) from the parent's right edge to the child's left edge. */
  d: string;
}

export interface TreeLayout {
  nodes: PlacedNode[];
  edges: Edge[];
  width: number;
  height: number;
}

/** Siblings oldest first (then by txn), whatever order the API listed them in. */
function siblingOrder(a: TaskNodeJson, b: TaskNodeJson): number {
  return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.txn < b.txn ? -1 : a.txn > b.txn ? 1 : 0;
}

/** Places every node of the tree; `nodes` are in pre-order (the order Tab walks them), siblings oldest first. */
export function layoutTaskTree(root: TaskNodeJson): TreeLayout {
  const h = hierarchy(root, (n) => n.children ?? []).sort((a, b) => siblingOrder(a.data, b.data));
  // d3's x is the breadth axis, y the depth axis: swapped below for a left-to-right drawing.
  tree<TaskNodeJson>().nodeSize([NODE.height + NODE.siblingGap, NODE.width + NODE.levelGap])(h);
  const all = h.descendants();
  let minBreadth = Infinity;
  let maxBreadth = -Infinity;
  let maxDepth = 0;
  for (const d of all) {
    minBreadth = Math.min(minBreadth, d.x ?? 0);
    maxBreadth = Math.max(maxBreadth, d.x ?? 0);
    maxDepth = Math.max(maxDepth, d.y ?? 0);
  }
  const top = (d: { x?: number }) => (d.x ?? 0) - minBreadth + NODE.margin;
  const left = (d: { y?: number }) => (d.y ?? 0) + NODE.margin;
  const nodes = all.map((d) => ({ node: d.data, x: left(d), y: top(d) }));
  const edges = h.links().map((l) => {
    const x1 = left(l.source) + NODE.width;
    const y1 = top(l.source) + NODE.height / 2;
    const x2 = left(l.target);
    const y2 = top(l.target) + NODE.height / 2;
    const mx = (x1 + x2) / 2;
    return { key: `${l.source.data.txn}>${l.target.data.txn}`, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` };
  });
  return {
    nodes,
    edges,
    width: maxDepth + NODE.width + 2 * NODE.margin,
    height: maxBreadth - minBreadth + NODE.height + 2 * NODE.margin,
  };
}

/** The node with this txn in the tree, or undefined. */
export function findNode(root: TaskNodeJson, txn: string): TaskNodeJson | undefined {
  const stack = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (n.txn === txn) return n;
    stack.push(...(n.children ?? []));
  }
  return undefined;
}

/** Lease states in which a credential may still work (revocation would act on them). */
const LIVE_LEASE_STATES = new Set(['pending', 'active', 'revoking']);

export interface SubtreeCounts {
  /** Tasks in the subtree (the node included) that are still active. */
  tasks: number;
  /** Task tokens still usable: one per active task. */
  tokens: number;
  /** Leases issued under the subtree that are not yet revoked or disabled. */
  leases: number;
  /** Every task of the subtree, whatever its state. */
  total: number;
}

/**
 * What revoking the subtree at `node` would stop now: its active tasks, their tokens and the live
 * leases issued under them (docs/tasks.md "Revoking a tree"). Expired and already revoked tasks
 * are counted in `total` only.
 */
export function subtreeCounts(node: TaskNodeJson): SubtreeCounts {
  const c: SubtreeCounts = { tasks: 0, tokens: 0, leases: 0, total: 0 };
  const stack = [node];
  while (stack.length) {
    const n = stack.pop()!;
    c.total++;
    if (n.state === 'active') {
      c.tasks++;
      c.tokens += n.tokens?.length ?? 1;
    }
    for (const l of n.leases ?? []) if (LIVE_LEASE_STATES.has(l.state)) c.leases++;
    stack.push(...(n.children ?? []));
  }
  return c;
}

/** The short name of an actor for a node box: the label (sub-agent) or the SPIFFE ID's last segment. */
export function actorShort(n: Pick<TaskNodeJson, 'actor' | 'label'>): string {
  const last = n.actor.split('/').filter(Boolean).pop() ?? n.actor;
  return n.label ? `${last} (${n.label})` : last;
}

/** The scope as one line: `['a', 'b']` → `a b`. */
export function scopeText(scope: readonly string[] | string | undefined): string {
  if (scope === undefined) return '';
  return typeof scope === 'string' ? scope : scope.join(' ');
}

/** Cuts `s` to at most `max` characters with an ellipsis (node boxes have a fixed width). */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}
