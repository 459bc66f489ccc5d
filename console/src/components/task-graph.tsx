import { useEffect, useMemo, useRef } from 'preact/hooks';
import { NODE, actorShort, clip, layoutTaskTree, scopeText, type TaskNodeJson } from '../lib/task-tree.js';

/**
 * The delegation tree as an SVG graph (layout: lib/task-tree.ts, d3-hierarchy). Each node is a
 * focusable button (Tab walks them in pre-order; Enter or Space selects), drawn with its actor,
 * scope, depth, user, purpose and state; revoked nodes get the class `revoked`. The SVG has its
 * natural size inside a scrolling box, so trees of hundreds of nodes stay readable.
 */
export function TaskGraph(props: { root: TaskNodeJson; selected: string | undefined; onSelect: (txn: string) => void }) {
  const layout = useMemo(() => layoutTaskTree(props.root), [props.root]);
  const box = useRef<HTMLDivElement>(null);
  // Bring the selected node into view when the tree loads or the selection comes from outside
  // (a link with ?select=); the root of a wide tree sits mid-way down a tall drawing. Not on a
  // live refresh of the same selection: the operator may have scrolled elsewhere.
  const placed = layout.nodes.find((p) => p.node.txn === props.selected);
  const shown = useRef<string | undefined>(undefined);
  useEffect(() => {
    const el = box.current;
    if (!el || !placed || shown.current === placed.node.txn) return;
    shown.current = placed.node.txn;
    const inView = placed.y >= el.scrollTop && placed.y + NODE.height <= el.scrollTop + el.clientHeight && placed.x >= el.scrollLeft && placed.x + NODE.width <= el.scrollLeft + el.clientWidth;
    if (!inView) el.scrollTo({ top: Math.max(0, placed.y - (el.clientHeight - NODE.height) / 2), left: Math.max(0, placed.x - 16) });
  }, [layout, placed?.node.txn]);
  return (
    <div class="graph uia-graph" data-testid="task-graph" tabIndex={-1} ref={box}>
      <svg width={layout.width} height={layout.height} viewBox={`0 0 ${layout.width} ${layout.height}`} role="group" aria-label={`Delegation tree: ${layout.nodes.length} tasks`}>
        <g aria-hidden="true">
          {layout.edges.map((e) => (
            <path key={e.key} class="edge" d={e.d} />
          ))}
        </g>
        {layout.nodes.map(({ node: n, x, y }) => {
          const sel = n.txn === props.selected;
          const user = n.user ? `user ${n.user}` : 'no user';
          const lines = { title: clip(actorShort(n), 25), scope: clip(scopeText(n.scope), 38), depth: clip(`depth ${n.depth}/${n.max_depth} · ${user}`, 40), purpose: clip(n.purpose, 40) };
          // The accessible name (SVG <title>, also the hover tooltip) has everything the clipped
          // lines leave out; it starts with the visible text (WCAG 2.5.3 "label in name").
          const name = `${lines.title} ${n.state} ${lines.scope} ${lines.depth} ${lines.purpose}. Task ${n.txn}, actor ${n.actor}, scope ${scopeText(n.scope)}, purpose ${n.purpose}`;
          return (
            <g
              key={n.txn}
              class={`node state-${n.state}${n.state === 'revoked' ? ' revoked' : ''}${sel ? ' selected' : ''}`}
              transform={`translate(${x},${y})`}
              role="button"
              tabindex={0}
              aria-pressed={sel}
              data-testid="task-node"
              data-txn={n.txn}
              data-state={n.state}
              onClick={() => props.onSelect(n.txn)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' || e.key === ' ') {
                  e.preventDefault();
                  props.onSelect(n.txn);
                }
              }}
            >
              <title>{name}</title>
              <rect width={NODE.width} height={NODE.height} rx={6} />
              <rect class="node-band" width={6} height={NODE.height} />
              <text x={14} y={18} class="node-title">
                {lines.title}
              </text>
              <text x={NODE.width - 8} y={18} text-anchor="end" class={`node-state state-${n.state}`}>
                {n.state}
              </text>
              <text x={14} y={37} class="mono">
                {lines.scope}
              </text>
              <text x={14} y={56}>
                {lines.depth}
              </text>
              <text x={14} y={75} class="muted-text">
                {lines.purpose}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
