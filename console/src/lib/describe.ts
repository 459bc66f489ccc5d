/** Sentences the console shows before an irreversible action. Pure: unit-tested under Node. */

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** `kill_preview` of `GET /v1/admin/agents/detail`: what `POST /v1/admin/revocations {kind:'agent'}` revokes now. */
export interface KillPreview {
  agent_tokens: number;
  task_tokens: number;
  leases: number;
  tasks: number;
}

/** `{3,2,4,1}` → `3 agent tokens, 2 task tokens, 4 leases, 1 task` (every count, zeros included). */
export function describeKill(p: KillPreview): string {
  return [count(p.agent_tokens, 'agent token'), count(p.task_tokens, 'task token'), count(p.leases, 'lease'), count(p.tasks, 'task')].join(', ');
}

/** `{tasks, tokens, leases}` of a subtree → `3 tasks, 3 task tokens, 1 lease`. */
export function describeSubtree(c: { tasks: number; tokens: number; leases: number }): string {
  return [count(c.tasks, 'active task'), count(c.tokens, 'task token'), count(c.leases, 'lease')].join(', ');
}
