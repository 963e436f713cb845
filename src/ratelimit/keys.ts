import { createHash } from 'node:crypto';

/** A SHA-256 digest of `text`, 128 bits in base64url (22 characters, never an `=`). */
const digest = (text: string): string => createHash('sha256').update(text).digest('base64url').slice(0, 22);

/** Whether `text` takes more than `max` bytes in UTF-8 (without encoding it when its length decides). */
const longerThan = (text: string, max: number): boolean => text.length > max || (text.length * 3 > max && Buffer.byteLength(text) > max);

/**
 * The key of one bucket: domain, descriptor entries, limit and its current size. A key longer than
 * `maxBytes` (UTF-8) becomes the domain and a digest of the whole key, so a client's long values
 * still get a bucket each while a local or Redis key stays short. The digested form cannot equal a
 * readable one: entries always hold a `=`, a digest never does.
 */
export function bucketKey(domain: string, entries: ReadonlyArray<{ key: string; value: string }>, limit: string, maxBytes: number): string {
  // Joined in a loop: no array or closure per call.
  let key = entries.length === 0 ? `${domain}\u0000` : domain;
  for (const e of entries) key += `\u0000${e.key}=${e.value}`;
  key += `\u0000${limit}`;
  return longerThan(key, maxBytes) ? `${domain}\u0000#${digest(key)}` : key;
}

/** Values longer than this are shown shortened (their start and a digest). */
const SHOWN_VALUE = 64;

/**
 * Text from a request as reports show it: over 64 characters, its first 32, `…` and a digest of
 * the whole text (57 characters in all), so distinct long texts stay distinct but short. The start
 * is copied (joined from its characters): a slice would keep the whole text alive.
 */
export function shown(text: string): string {
  return text.length > SHOWN_VALUE ? `${[...text.slice(0, 32)].join('')}…#${digest(text)}` : text;
}

/** Entries as reports and limit names show them: each value `shown`. */
export function shownEntries(entries: ReadonlyArray<{ key: string; value: string }>): Array<{ key: string; value: string }> {
  return entries.map(({ key, value }) => ({ key, value: shown(value) }));
}
