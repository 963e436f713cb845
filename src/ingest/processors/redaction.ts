import type { Conversion, Row } from '../otlp/result.js';

/** Attribute map columns (or arrays of maps) that redaction applies to. */
const MAP_COLUMNS = ['ResourceAttributes', 'ScopeAttributes', 'SpanAttributes', 'LogAttributes', 'Attributes'];
const MAP_ARRAY_COLUMNS = ['Events.Attributes', 'Links.Attributes', 'Exemplars.FilteredAttributes'];
/**
 * Free-text columns where secrets in values are redacted. Span and service names become RED metric
 * labels on the open /metrics endpoint, so they are redacted as the text of a status message is.
 */
const TEXT_COLUMNS = ['Body', 'StatusMessage', 'SpanName', 'ServiceName'];

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

/** A built-in secret finder: a cheap guard, then one linear expression (no catastrophic backtracking). */
interface Builtin {
  guard(text: string): boolean;
  re: RegExp;
  /** What replaces a match; `$1` keeps a captured prefix. */
  replace: string;
}

// Passwords in URLs: scheme://user:password@host (the scheme starts a word).
const URL_PASSWORD: Builtin = { guard: (t) => t.includes('://') && t.includes('@'), re: /(?<![A-Za-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/[^:/\s@]+:)[^@/\s]+@/gi, replace: '$1[REDACTED]@' };
// Secrets in query strings.
const QUERY_SECRET: Builtin = {
  guard: (t) => t.includes('='),
  re: /([?&](?:access_token|id_token|refresh_token|token|api_key|apikey|key|password|secret|client_secret|sig|signature|auth)=)[^&#\s]+/gi,
  replace: '$1[REDACTED]',
};

const BUILTINS: Builtin[] = [
  // Authorization credentials; the token must look like one (12+ characters), not "basic health".
  { guard: (t) => /bearer|basic/i.test(t), re: /\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]{12,}=*/gi, replace: '$1 [REDACTED]' },
  // JWTs: only from the start of a run of token characters, each part read once (lookahead + backreference).
  {
    guard: (t) => t.includes('eyJ'),
    re: /(?<![A-Za-z0-9_-])eyJ(?=([A-Za-z0-9_-]{5,}))\1\.(?=([A-Za-z0-9_-]{5,}))\2\.(?=([A-Za-z0-9_-]{5,}))\3/g,
    replace: '[REDACTED]',
  },
  // AWS access key ids.
  { guard: (t) => t.includes('AKIA') || t.includes('ASIA'), re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, replace: '[REDACTED]' },
  URL_PASSWORD,
  QUERY_SECRET,
];

/**
 * Text with the secrets URLs carry replaced: a password (`scheme://user:password@`) and the values of
 * secret query parameters (`api_key=`, `token=`, ...). Applied whatever `ingest.redaction` says: the
 * agent's own text about URLs from its configuration (http-check) never shows their secrets.
 */
export function redactUrlSecrets(text: string): string {
  let out = text;
  for (const b of [URL_PASSWORD, QUERY_SECRET]) if (b.guard(out)) out = out.replace(b.re, b.replace);
  return out;
}

/** Text none of the built-ins can match fails this one scan (each built-in's guard implies it). */
const ANY_BUILTIN = /bearer|basic|eyJ|AKIA|ASIA|:\/\/|=|\d{4}/i;

const CARD_CANDIDATE = /\b\d(?:[ -]?\d){12,18}\b/g;
/** Issuer prefixes of card numbers (Visa, Mastercard, Amex, Diners, Discover, JCB, UnionPay). */
const CARD_ISSUER = /^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|35|6(?:011|5|4[4-9]|2))/;

/** Luhn checksum: true for numbers that can be payment card numbers. */
export function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

/** Whether a digit run (spaces and dashes allowed) looks like a payment card number. */
function isCardNumber(candidate: string): boolean {
  const digits = candidate.replace(/[ -]/g, '');
  return digits.length >= 13 && digits.length <= 19 && CARD_ISSUER.test(digits) && luhn(digits);
}

/** Texts up to this length have their redaction remembered, at most this many at once (then the memo starts over). */
const MEMO_TEXT_LENGTH = 256;
const MEMO_ENTRIES = 8_192;

/** Options for createRedaction. */
export interface RedactionOptions {
  /** Key patterns (regular expressions, case-insensitive) whose values are replaced whole. */
  keys: readonly string[];
  /** Extra value patterns (regular expressions, case-insensitive) replaced wherever they appear. */
  values: readonly string[];
  /** Also find the built-in secrets in values: credentials, JWTs, AWS keys, URL and query-string secrets, card numbers. */
  builtins: boolean;
  replacement: string;
}

/** Replaces secrets in attribute maps and free text of converted rows, in place. */
export interface Redaction {
  process(c: Conversion): void;
  /** Redacts one text value (used for event payloads too). */
  redactText(text: string): string;
  /** One attribute's value as stored: replaced whole under a secret key, else with secrets in it redacted. */
  redactAttribute(key: string, value: string): string;
  /** A free-text column (a span's status message, a log body) with secrets in it redacted. */
  redactFreeText(text: string): string;
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
  // Compile each pattern alone first, so an error names the pattern at fault; then match all at once.
  for (const k of options.keys) compile(k, 'i');
  for (const v of options.values) compile(v, 'gi');
  const keyRe = options.keys.length > 0 ? compile(options.keys.map((k) => `(?:${k})`).join('|'), 'i') : undefined;
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
    if (options.builtins && ANY_BUILTIN.test(out)) {
      for (const b of BUILTINS) if (b.guard(out)) out = out.replace(b.re, b.replace.replace('[REDACTED]', replacement));
      if (/\d{4}/.test(out)) out = out.replace(CARD_CANDIDATE, (m) => (isCardNumber(m) ? replacement : m));
    }
    if (valueRe) {
      valueRe.lastIndex = 0;
      if (valueRe.test(out)) out = out.replace(valueRe, replacement);
    }
    return out;
  };
  // Values repeat (span names, attribute values): each distinct text is searched once, while it is in the memo.
  const memo = new Map<string, string>();
  // Values shorter than this hold no secret worth finding (every built-in needs more).
  const redactFreeText = (text: string): string => {
    if (text.length < 8) return text;
    if (text.length > MEMO_TEXT_LENGTH) return redactText(text);
    let out = memo.get(text);
    if (out === undefined) {
      out = redactText(text);
      if (memo.size >= MEMO_ENTRIES) memo.clear();
      memo.set(text, out);
    }
    return out;
  };
  const redactAttribute = (key: string, value: string): string => (secretKey(key) ? replacement : redactFreeText(value));
  const redactMap = (map: Record<string, string>): void => {
    for (const key of Object.keys(map)) map[key] = redactAttribute(key, map[key] ?? '');
  };
  const redactRow = (row: Row, done: Set<object>): void => {
    // Rows of one resource share its maps: redact each map once (a pattern may match its own replacement).
    for (const col of MAP_COLUMNS) {
      const map = row[col] as Record<string, string> | undefined;
      if (map && !done.has(map)) {
        done.add(map);
        redactMap(map);
      }
    }
    for (const col of MAP_ARRAY_COLUMNS) for (const m of (row[col] as Array<Record<string, string>> | undefined) ?? []) redactMap(m);
    for (const col of TEXT_COLUMNS) if (typeof row[col] === 'string') row[col] = redactFreeText(row[col]);
  };
  return {
    process(c) {
      const done = new Set<object>();
      for (const rows of c.tables.values()) for (const row of rows) redactRow(row, done);
    },
    redactText,
    redactAttribute,
    redactFreeText,
  };
}
