import { useMemo } from 'preact/hooks';
import { NODE, actorShort, clip, layoutTaskTree, type TaskNodeJson } from '../lib/task-tree.js';

/**
 * The delegation tree as an SVG graph (layout: lib/task-tree.ts, d3-hierarchy). Each node is a
 * focusable button (Tab walks them in pre-order; Enter or Space selects), drawn with its actor,
 * scope, depth, user, purpose and state; revoked nodes get the class `revoked`. The SVG has its
 * natural size inside a scrolling box, so trees of hundreds of nodes stay readable.
 */
export function TaskGraph(props: { root: TaskNodeJson; selected: string | undefined; onSelect: (txn: string) => void }) {
  const layout = useMemo(() => layoutTaskTree(props.root), [props.root]);
  return (
    <div class="graph uia-graph" data-testid="task-graph" tabIndex={-1}>
      <svg width={layout.width} height={layout.height} viewBox={`0 0 ${layout.width} ${layout.height}`} role="group" aria-label={`Delegation tree: ${layout.nodes.length} tasks`}>
        <g aria-hidden="true">
          {layout.edges.map((e) => (
            <path key={e.key} class="edge" d={e.d} />
          ))}
        </g>
        {layout.nodes.map(({ node: n, x, y }) => {
          const sel = n.txn === props.selected;
          const user = n.user ? `user ${n.user}` : 'no user';
          return (
            <g
              key={n.txn}
              class={`node state-${n.state}${n.state === 'revoked' ? ' revoked' : ''}${sel ? ' selected' : ''}`}
              transform={`translate(${x},${y})`}
              role="button"
              tabIndex={0}
              aria-pressed={sel}
              aria-label={`${actorShort(n)}, depth ${n.depth} of ${n.max_depth}, ${n.state}, scope ${n.scope}, ${user}, purpose ${n.purpose}`}
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
              <rect width={NODE.width} height={NODE.height} rx={6} />
              <rect class="node-band" width={6} height={NODE.height} />
              <text x={14} y={18} class="node-title">
                {clip(actorShort(n), 30)}
              </text>
              <text x={NODE.width - 8} y={18} text-anchor="end" class={`node-state state-${n.state}`}>
                {n.state}
              </text>
              <text x={14} y={37} class="mono">
                {clip(n.scope, 38)}
              </text>
              <text x={14} y={56}>
                {clip(`depth ${n.depth}/${n.max_depth} · ${user}`, 40)}
              </text>
              <text x={14} y={75} class="muted-text">
                {clip(n.purpose, 40)}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
