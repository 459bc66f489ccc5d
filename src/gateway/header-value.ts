import { TesseraError } from '../shared/errors.js';

/**
 * What makes `value` unusable as an HTTP field value (RFC 9110 §5.5: visible characters, spaces
 * and horizontal tabs; never CR, LF, NUL or another control character), in words that locate the
 * fault without showing the value; undefined when it is fine.
 */
export function headerValueFault(value: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  const m = /[\x00-\x08\x0a-\x1f\x7f]/.exec(value);
  if (!m) return undefined;
  const c = m[0].charCodeAt(0);
  const what = c === 0x0a ? 'a line break (LF)' : c === 0x0d ? 'a line break (CR)' : `a control character (0x${c.toString(16).padStart(2, '0')})`;
  const where = m.index === value.length - 1 || (c === 0x0d && value.slice(m.index) === '\r\n') ? 'at its end' : `at character ${m.index + 1} of ${value.length}`;
  return `${what} ${where}`;
}

/**
 * Throws TESSERA_GATEWAY_SECRET_UNUSABLE when a secret value cannot be sent in the header
 * `header` (RFC 9110 §5.5), before any request: the message names where the value came from
 * (`from`: a kv path, or an issued credential's field), the header and the fault, never the
 * value. `who` names the tool or upstream server. Returns the value when it is fine.
 */
export function requireHeaderSafe(value: string, who: string, header: string, from: { readonly secret: string } | { readonly credential: string }): string {
  const fault = headerValueFault(value);
  if (!fault) return value;
  const source = 'secret' in from ? `the secret ${from.secret}` : `the credential field ${from.credential}`;
  const fix = 'secret' in from ? `store it again without (tessera kv put ${from.secret} --from-file FILE drops one trailing newline)` : 'check the credential engine';
  throw new TesseraError('TESSERA_GATEWAY_SECRET_UNUSABLE', `${who}: ${source} cannot be sent in the ${header} header: it holds ${fault} (RFC 9110 §5.5); ${fix}`, { header, ...from });
}
