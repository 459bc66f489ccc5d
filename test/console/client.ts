/** A console session over real HTTP, the way the browser's fetch holds it: the cookie and the CSRF token. */
export interface Session {
  readonly cookie: string;
  readonly csrf: string;
  readonly body: any;
  readonly setCookie: string;
}

export interface Answer {
  readonly status: number;
  readonly body: any;
  readonly headers: Headers;
}

export async function call(base: string, method: string, path: string, opts: { cookie?: string; csrf?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(base + path, {
    method,
    redirect: 'manual',
    headers: {
      ...(opts.cookie !== undefined ? { cookie: opts.cookie } : {}),
      ...(opts.csrf !== undefined ? { 'x-csrf-token': opts.csrf } : {}),
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(opts.headers ?? {}),
    },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, headers: res.headers };
}

/** Signs in with an operator token; throws unless 201. */
export async function signIn(base: string, token: string): Promise<Session> {
  const r = await call(base, 'POST', '/v1/console/session', { body: { token } });
  if (r.status !== 201) throw new Error(`sign-in: ${r.status} ${JSON.stringify(r.body)}`);
  const setCookie = r.headers.getSetCookie()[0]!;
  return { cookie: setCookie.split(';')[0]!, csrf: r.body.csrf_token as string, body: r.body, setCookie };
}
