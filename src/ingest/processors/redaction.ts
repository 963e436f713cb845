import type { Conversion, Row } from '../otlp/result.js';

/** Attribute map columns (or arrays of maps) that redaction applies to. */
const MAP_COLUMNS = ['ResourceAttributes', 'ScopeAttributes', 'SpanAttributes', 'LogAttributes', 'Attributes'];
const MAP_ARRAY_COLUMNS = ['Events.Attributes', 'Links.Attributes', 'Exemplars.FilteredAttributes'];
/** Free-text columns where secrets in values are redacted. */
const TEXT_COLUMNS = ['Body', 'StatusMessage'];

/**
 * Attribute keys whose values are always redacted, judged on the key's last segment, so that
 * `http.request.header.authorization` and `db.password` match but `gen_ai.usage.input_tokens` does not.
 */
export const DEFAULT_KEY_PATTERNS = [
  String.raw`(^|[._-])(proxy-)?authorization$`,
  String.raw`(^|[._-])(set-)?cookie$`,
  String.raw`(^|[._-])(password|passwd|pwd|secret|client[-_]?secret|private[-_]?key|credentials?)$`,
  String.raw`(^|[._-])(api[-_]?key|x-api-key|(access|refresh|auth|id|session)[-_]?token|token)$`,
];

/** Secrets recognised inside any value: bearer/basic credentials, JWTs, AWS access keys, URL passwords. */
export const DEFAULT_VALUE_PATTERNS = [
  String.raw`\b(?:Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*`,
  String.raw`\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}`,
  String.raw`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`,
  String.raw`(?<=[a-z][a-z0-9+.-]*://[^:/\s@]+:)[^@/\s]+(?=@)`,
];

const CARD_CANDIDATE = /\b\d(?:[ -]?\d){12,18}\b/g;

/** Luhn checksum: true for numbers that can be payment card numbers. */
function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

/** Options for createRedaction. */
export interface RedactionOptions {
  /** Key patterns (regular expressions, case-insensitive) whose values are replaced whole. */
  keys: readonly string[];
  /** Value patterns (regular expressions, case-insensitive) replaced wherever they appear. */
  values: readonly string[];
  /** Also redact digit runs that pass the Luhn check (card numbers). */
  cardNumbers: boolean;
  replacement: string;
}

/** Replaces secrets in attribute maps and free text of converted rows, in place. */
export interface Redaction {
  process(c: Conversion): void;
  /** Redacts one text value (used for event payloads too). */
  redactText(text: string): string;
}

/** Creates the redaction processor. Throws naming the pattern when one is not a valid expression. */
export function createRedaction(options: RedactionOptions): Redaction {
  const compile = (p: string, flags: string) => {
    try {
      return new RegExp(p, flags);
    } catch (err) {
      throw new Error(`invalid redaction pattern ${JSON.stringify(p)}: ${(err as Error).message}`, { cause: err });
    }
  };
  // Compile each key pattern alone first, so an error names the pattern at fault; then match all at once.
  for (const k of options.keys) compile(k, 'i');
  const keyRe = options.keys.length > 0 ? compile(options.keys.map((k) => `(?:${k})`).join('|'), 'i') : undefined;
  for (const v of options.values) compile(v, 'gi');
  // One pass per value: every value pattern in one alternation (most values match none).
  const valueRe = options.values.length > 0 ? compile(options.values.map((v) => `(?:${v})`).join('|'), 'gi') : undefined;
  const replacement = options.replacement;
  const keyCache = new Map<string, boolean>();
  const secretKey = (key: string): boolean => {
    let hit = keyCache.get(key);
    if (hit === undefined) {
      hit = keyRe?.test(key) ?? false;
      if (keyCache.size < 10_000) keyCache.set(key, hit);
    }
    return hit;
  };
  const redactText = (text: string): string => {
    let out = text;
    if (valueRe) {
      valueRe.lastIndex = 0;
      if (valueRe.test(out)) out = out.replace(valueRe, replacement);
    }
    if (options.cardNumbers && /\d{4}/.test(out)) out = out.replace(CARD_CANDIDATE, (m) => (luhn(m.replace(/[ -]/g, '')) ? replacement : m));
    return out;
  };
  const redactMap = (map: Record<string, string>): void => {
    for (const key of Object.keys(map)) {
      const value = map[key] ?? '';
      if (secretKey(key)) map[key] = replacement;
      else if (value.length >= 8) map[key] = redactText(value);
    }
  };
  const redactRow = (row: Row): void => {
    for (const col of MAP_COLUMNS) if (row[col]) redactMap(row[col] as Record<string, string>);
    for (const col of MAP_ARRAY_COLUMNS) for (const m of (row[col] as Array<Record<string, string>> | undefined) ?? []) redactMap(m);
    for (const col of TEXT_COLUMNS) if (typeof row[col] === 'string' && (row[col]).length >= 8) row[col] = redactText(row[col]);
  };
  return {
    process(c) {
      for (const rows of c.tables.values()) for (const row of rows) redactRow(row);
    },
    redactText,
  };
}
