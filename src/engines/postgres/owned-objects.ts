// A module of its own so the CLI checks `engine postgres role --owned-objects` without loading
// the engine.
/**
 * What revocation does with the objects a dynamic user owns (and the privileges granted to it)
 * in the engine's database, after the user is disabled: `drop` (default) — `DROP OWNED BY`, the
 * objects die with the lease; `reassign` — `REASSIGN OWNED BY … TO <reassign_to>` first, then
 * `DROP OWNED BY` for the remaining privileges. See docs/adr/0071-revocation-disable-first.md.
 */
export const OWNED_OBJECT_RULES = ['drop', 'reassign'] as const;
export type OwnedObjectRule = (typeof OWNED_OBJECT_RULES)[number];
