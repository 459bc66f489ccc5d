import { ApiError } from '../api.js';

/** An API error as the operator should see it: the human message, the stable code, the request id. */
export function ErrorBox({ error }: { error: ApiError | Error | undefined }) {
  if (!error) return null;
  const api = error instanceof ApiError ? error : undefined;
  return (
    <div class="error" role="alert" data-testid="error">
      <p class="error-message">{error.message}</p>
      {api && (
        <p class="error-meta">
          <code data-testid="error-code">{api.code}</code>
          {api.requestId && <span> · request {api.requestId}</span>}
        </p>
      )}
    </div>
  );
}
