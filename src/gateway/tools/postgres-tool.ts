/**
 * `postgres` declarative tools: one parameterized statement, run with a just-in-time dynamic
 * credential that exists only for this call.
 *
 * Per call: validate the arguments → `ctx.issueCredential(engine, role, ttl)` (a lease owned by
 * the calling agent; the core registers its values with the scrubber) → connect with
 * `connect_timeout` and `statement_timeout` → run the statement with the EXTENDED query
 * protocol (Parse/Bind/Execute, PostgreSQL protocol §55.2.3): the arguments travel in Bind as
 * parameter values, never in the SQL text, and Parse refuses more than one statement → fetch
 * at most `max_rows + 1` rows (Execute's row limit; the portal is then closed by Sync, so the
 * server never sends more) → close the connection → revoke the lease at once
 * (`ctx.revokeCredential`, when the core offers it; otherwise it expires with its TTL).
 */
import pg from 'pg';
import { fail, TesseraError } from '../../shared/errors.js';
import type { ToolCallContext, ToolResult } from '../types.js';
import type { PostgresToolConfig } from './config.js';
import { withTimeout, type CompiledTool, type DeclarativeToolDeps } from './http-tool.js';
import { compileArgSchema } from './json-schema.js';
import { describeDuration } from '../../shared/duration.js';

/**
 * pg's Query, stopped after one Execute page: on PortalSuspended (more rows than asked for) we
 * Sync instead of asking for the next page, which closes the unnamed portal (protocol §55.2.3).
 */
class CappedQuery extends pg.Query {
  truncated = false;
  // Overrides pg's internal handler (pg/lib/query.js); the max_rows test guards the behaviour.
  handlePortalSuspended(connection: { sync(): void }): void {
    this.truncated = true;
    connection.sync();
  }
}

/** SQLSTATE classes that mean "could not use the database" rather than "the statement failed". */
const UNAVAILABLE_CLASSES = ['08', '28', '3D', '53', '57P'];

function jsonSafe(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`; // bytea hex format (docs §8.4.1)
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (Array.isArray(v)) return v.map(jsonSafe);
  return v;
}

function str(data: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const v = data[key];
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;
}

export function compilePostgresTool(cfg: PostgresToolConfig, deps: DeclarativeToolDeps): CompiledTool {
  const validator = compileArgSchema(cfg.input_schema);
  const id = `${cfg.server}/${cfg.name}`;
  const tool = {
    name: cfg.name,
    ...(cfg.description !== undefined ? { description: cfg.description } : {}),
    inputSchema: validator.schema,
    ...(cfg.annotations ? { annotations: cfg.annotations } : {}),
  };

  async function call(args: Readonly<Record<string, unknown>>, ctx: ToolCallContext): Promise<ToolResult> {
    validator.validate(args);
    // Absent optional arguments bind as SQL NULL. Objects bind as JSON text (pg prepareValue).
    const values = cfg.params.map((p) => (args[p] === undefined ? null : args[p]));
    const lease = await ctx.issueCredential(cfg.credential.engine, cfg.credential.role, cfg.credential.ttl);
    const started = deps.clock.now();
    const t = withTimeout(ctx.signal, cfg.connect_timeout + cfg.timeout);
    let client: pg.Client | undefined;
    try {
      const data = lease.data;
      const uri = str(data, 'uri');
      const base = uri
        ? { connectionString: uri }
        : { host: str(data, 'host'), port: Number(str(data, 'port') ?? 5432), database: str(data, 'database'), user: str(data, 'username'), password: str(data, 'password') };
      client = new pg.Client({
        ...base,
        connectionTimeoutMillis: cfg.connect_timeout,
        statement_timeout: cfg.timeout, // server side: cancels with SQLSTATE 57014
        query_timeout: cfg.timeout + 1000, // client side backstop if the server does not answer
        application_name: `tessera-gateway ${id}`.slice(0, 63),
      });
      client.on('error', () => {
        // A connection dropped after the call is reported through the query; nothing to do here.
      });
      const c = client;
      const onAbort = (): void => void c.end().catch(() => undefined);
      t.signal.addEventListener('abort', onAbort, { once: true });
      try {
        await client.connect();
      } catch (e) {
        throw mapPgError(e, t.timedOut(), ctx.signal, id, 'connect', cfg.timeout);
      }
      // `rows` (Execute's row limit) is a pg option its type declarations do not list.
      const query = new CappedQuery({ text: cfg.statement, values, rows: cfg.max_rows + 1 } as pg.QueryConfig);
      let result: pg.QueryResult;
      try {
        result = await new Promise<pg.QueryResult>((resolve, reject) => {
          (query as unknown as { callback: (err: Error | null, res: pg.QueryResult) => void }).callback = (err, res) => (err ? reject(err) : resolve(res));
          c.query(query);
        });
      } catch (e) {
        const sqlstate = (e as { code?: unknown }).code;
        if (e instanceof pg.DatabaseError && typeof sqlstate === 'string' && sqlstate !== '57014' && !UNAVAILABLE_CLASSES.some((k) => sqlstate.startsWith(k))) {
          // The statement ran and PostgreSQL refused it (bad value, permission, constraint):
          // a tool-level error the agent can read and act on (MCP: isError result).
          return { content: [{ type: 'text', text: `PostgreSQL error ${sqlstate}: ${e.message}` }], isError: true };
        }
        throw mapPgError(e, t.timedOut(), ctx.signal, id, 'query', cfg.timeout);
      }
      const rows = (result.rows ?? []).slice(0, cfg.max_rows).map((r: Record<string, unknown>) => {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(r)) out[k] = jsonSafe(v);
        return out;
      });
      const truncated = query.truncated || (result.rows?.length ?? 0) > cfg.max_rows;
      const structured: Record<string, unknown> = {
        columns: (result.fields ?? []).map((f) => f.name),
        rows,
        row_count: rows.length,
        truncated,
        ...(result.command ? { command: result.command } : {}),
        ...(!truncated && typeof result.rowCount === 'number' ? { affected_rows: result.rowCount } : {}),
      };
      deps.logger.debug({ tool: id, rows: rows.length, truncated, ms: deps.clock.now() - started }, 'declarative postgres tool call');
      return { content: [{ type: 'text', text: JSON.stringify(structured) }], structuredContent: structured, isError: false };
    } finally {
      t.dispose();
      await client?.end().catch(() => undefined);
      if (ctx.revokeCredential) {
        // Prompt revocation: the credential must not outlive the call. A failure is logged (ids
        // only) and left to the lease manager, which revokes at TTL expiry with retries.
        await ctx.revokeCredential(lease.leaseId).catch((e: unknown) => {
          deps.logger.warn({ tool: id, code: (e as { code?: string }).code }, 'could not revoke the per-call lease; it will expire with its TTL');
        });
      }
    }
  }

  return { tool, validate: validator.validate, call };
}

function mapPgError(e: unknown, timedOut: boolean, callerSignal: AbortSignal, id: string, phase: 'connect' | 'query', timeoutMs: number): unknown {
  if (e instanceof TesseraError) return e;
  const code = (e as { code?: unknown }).code;
  const msg = (e as Error).message ?? '';
  if (code === '57014' || /timeout/i.test(msg) || timedOut) {
    return fail('TESSERA_TOOL_TIMEOUT', phase === 'connect' ? `${id}: could not connect to PostgreSQL in time` : `${id}: the statement did not finish within ${describeDuration(timeoutMs)} (the tool's timeout, sent as statement_timeout)`);
  }
  if (callerSignal.aborted) return callerSignal.reason ?? e;
  // SQLSTATE or a socket error code only: messages can name the (per-call) user.
  return new TesseraError('TESSERA_TOOL_UPSTREAM_FAILED', `${id}: PostgreSQL ${phase} failed (${typeof code === 'string' ? code : (e as Error).name})`);
}
