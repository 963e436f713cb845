/**
 * `key=value` patterns of the automation settings (allow lists, honeypot entries) at run time. Apart
 * from the settings' schema (automation.ts) so the rate-limit worker uses them without loading zod.
 */

/** A `key=value` pattern taken apart: its key, and its value or (`prefix`) the start of the values it matches. */
export interface EntryPattern {
  key: string;
  value: string;
  prefix: boolean;
}

/** Takes a pattern of entryPattern's form apart (once, for patterns matched on every call). */
export function parseEntryPattern(p: string): EntryPattern {
  const eq = p.indexOf('=');
  const v = p.slice(eq + 1);
  return { key: p.slice(0, eq), value: v.endsWith('*') ? v.slice(0, -1) : v, prefix: v.endsWith('*') };
}

/** Whether the entry `key`=`value` matches `p`. */
export const entryMatches = (p: EntryPattern, key: string, value: string): boolean => p.key === key && (p.prefix ? value.startsWith(p.value) : value === p.value);

/** Longest value an automatic block takes (longer ones are left alone: an entity is at most 1,024 characters of value). */
export const MAX_AUTO_BLOCK_VALUE = 1_024;

/** Whether automation may block the entry `key=value`: its key is one of `blockKeys`, its value not too long, and it is not on the `allow` list. */
export function autoBlockable(blockKeys: readonly string[], allow: readonly string[], key: string, value: string): boolean {
  return blockKeys.includes(key) && value.length <= MAX_AUTO_BLOCK_VALUE && !matchesEntry(allow, key, value);
}

/** Whether the entry `key=value` matches a pattern of `patterns` (exact, or a value prefix ending in `*`). */
export function matchesEntry(patterns: readonly string[], key: string, value: string): boolean {
  return patterns.some((p) => entryMatches(parseEntryPattern(p), key, value));
}
