/**
 * Canonical JSON in the spirit of RFC 8785 (JCS): object keys sorted by UTF-16 code units
 * (§3.2.3), no whitespace, ECMAScript number and string serialization (§3.2.2). `undefined`
 * members are omitted (as JSON.stringify does); non-finite numbers are refused because JSON
 * cannot represent them (RFC 8785 §3.2.2.3).
 */
export function canonicalize(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot represent a non-finite number');
      return JSON.stringify(value);
    case 'object': {
      // One pass, no intermediate arrays: every audit event is canonicalized once (its hash input).
      if (Array.isArray(value)) {
        let s = '[';
        for (let i = 0; i < value.length; i++) s += (i > 0 ? ',' : '') + (value[i] === undefined ? 'null' : canonicalize(value[i]));
        return `${s}]`;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj);
      if (keys.length > 1) keys.sort();
      let s = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        s += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalize(v)}`;
        first = false;
      }
      return `${s}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot represent a ${typeof value}`);
  }
}
