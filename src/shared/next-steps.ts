/**
 * What to do next, said to both audiences of one error. Server messages are shared by the HTTP
 * API and the CLI: a message names the HTTP route (`list them with GET /v1/admin/revocations`)
 * and carries the same step in `details.next_step` as `{ route, cli }`; the CLI shows the
 * command instead of the route (src/cli/io.ts `toCliError`). One place pairs each route with its
 * command, so they cannot drift apart.
 */
export interface NextStep {
  /** As the message says it: `GET /v1/admin/revocations`. */
  readonly route: string;
  /** The `tessera` command that does the same: `tessera revoke list`. */
  readonly cli: string;
}

export const NEXT_STEPS = {
  login: (): NextStep => ({ route: 'POST /v1/oauth/token', cli: 'tessera login' }),
  listSecrets: (): NextStep => ({ route: 'GET /v1/admin/secrets?prefix=…', cli: 'tessera kv list PREFIX' }),
  listLeases: (): NextStep => ({ route: 'GET /v1/admin/leases', cli: 'tessera lease list' }),
  listRevocations: (): NextStep => ({ route: 'GET /v1/admin/revocations', cli: 'tessera revoke list' }),
  listTasks: (): NextStep => ({ route: 'GET /v1/admin/tasks', cli: 'tessera task list' }),
  listAgents: (): NextStep => ({ route: 'GET /v1/admin/agents', cli: 'tessera agent list' }),
  liftRevocation: (id: string): NextStep => ({ route: `DELETE /v1/admin/revocations/${id}`, cli: `tessera revoke lift ${id}` }),
  configurePostgres: (name: string): NextStep => ({ route: `PUT /v1/admin/engines/postgres/${name}`, cli: `tessera engine postgres configure ${name} --url -` }),
} as const;

/** `details.next_step` of an error, when it is a well-formed step (the CLI reads it from a response). */
export function nextStepOf(details: unknown): NextStep | undefined {
  const s = details && typeof details === 'object' ? (details as { next_step?: unknown }).next_step : undefined;
  if (!s || typeof s !== 'object') return undefined;
  const { route, cli } = s as { route?: unknown; cli?: unknown };
  return typeof route === 'string' && typeof cli === 'string' ? { route, cli } : undefined;
}

/** The message as the CLI shows it: the route replaced by its command. */
export function forCli(message: string, step: NextStep | undefined): string {
  return step && message.includes(step.route) ? message.split(step.route).join(`\`${step.cli}\``) : message;
}
