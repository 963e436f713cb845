import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';
import { SubstitutionError, substituteEnv } from './substitute.js';

/** The configuration could not be read or is invalid; the message names every bad key path. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A loaded configuration with where it came from and a hash that identifies it. */
export interface LoadedConfig {
  config: Config;
  /** The file read, or undefined when running on defaults. */
  source: string | undefined;
  /** SHA-256 (hex) of the effective configuration. */
  hash: string;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

/** A value at fault, for a message: scalars quoted; a mapping or list only named (it may hold secrets at any depth). */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value !== null && typeof value === 'object') return 'a mapping';
  return JSON.stringify(value) ?? typeof value;
}

const SECRET_KEY = /password|secret|token|credential/i;

/** Whether a key holds a secret: a password, token, ...; any header or body of an HTTP probe. */
const isSecretKey = (key: string): boolean => SECRET_KEY.test(key) || key === 'headers' || key === 'body';

/** Whether a key path holds a secret: its value is never shown. */
function isSecretPath(path: readonly PropertyKey[]): boolean {
  return path.some((k) => typeof k === 'string' && isSecretKey(k));
}

/** A URL with everything after its origin replaced by `/***`. */
function maskPath(url: string): string {
  return URL.canParse(url) ? `${new URL(url).origin}/***` : '***';
}

/** Credentials in URLs (`//user:password@`) and secret-looking query parameters (`api_key=`, `token=`, ...) replaced by `***`. */
function maskUrls(text: string): string {
  return text.replace(/(:\/\/)[^/@\s"]*@/g, '$1***@').replace(/([?&][^=&\s"#]*(?:password|secret|token|credential|api[_-]?key|apikey|signature|sig)[^=&\s"#]*=)[^&#\s"]*/gi, '$1***');
}

/**
 * One line per problem, each naming the key path (e.g. `jobs.scheduled[0].schedule: ...`). The
 * value at fault is quoted (`got ...`) unless its path holds a secret; credentials in URLs are masked.
 */
export function formatIssue(issue: z.core.$ZodIssue): string[] {
  return formatIssueText(isSecretPath(issue.path) ? withoutInput(issue) : issue).map(maskUrls);
}

/** An issue on a secret: no input to quote (messages never quote it themselves). */
function withoutInput(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  const copy = { ...issue };
  delete copy.input;
  return copy;
}

/**
 * `, got <value>` for an issue about a key's own value: the one place a value at fault is quoted,
 * so messages of the schema never quote it. A refinement of a mapping (a cross-field check, a cron
 * schedule) has that mapping as input and quotes nothing here.
 */
function got(issue: z.core.$ZodIssue): string {
  if (!('input' in issue)) return '';
  if (issue.code === 'custom' && (issue.input === undefined || (issue.input !== null && typeof issue.input === 'object'))) return '';
  return `, got ${describe(issue.input)}`;
}

function formatIssueText(issue: z.core.$ZodIssue): string[] {
  const at = formatPath(issue.path);
  const prefix = at ? `${at}: ` : '';
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => `${at ? `${at}.` : ''}${key}: unknown key`);
    case 'invalid_type':
      return [`${prefix}expected ${issue.expected}${got(issue)}`];
    case 'invalid_value':
      return [`${prefix}expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${got(issue)}`];
    case 'invalid_union':
      // Our unions are "number or string with units": the string branch carries the useful message.
      return issue.errors.flat().length > 0 ? issue.errors.flat().flatMap((inner) => formatIssue({ ...inner, path: [...issue.path, ...inner.path] })).slice(-1) : [`${prefix}${issue.message}`];
    default:
      return [`${prefix}${issue.message}${got(issue)}`];
  }
}

/** Validates an already parsed (and substituted) config tree. Throws ConfigError. */
export function validateConfig(tree: unknown, source?: string): Config {
  const result = configSchema.safeParse(tree ?? {}, { reportInput: true });
  if (!result.success) {
    const lines = result.error.issues.flatMap(formatIssue);
    throw new ConfigError(`invalid configuration${source ? ` in ${source}` : ''}:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}

/**
 * SHA-256 of the canonical JSON of a config with secrets masked: equal configs hash equal whatever
 * the key order, and the hash (shown on /status) reveals nothing about the secrets.
 */
export function hashConfig(config: Config): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canonical) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])])) : v;
  return createHash('sha256').update(JSON.stringify(canonical(maskSecrets(config)))).digest('hex');
}

/**
 * Loads the configuration from `path` (or `HEIMDALL_CONFIG`, or defaults when neither is set),
 * substitutes environment references and validates it. Throws ConfigError naming each bad key path.
 */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const source = path ?? (env.HEIMDALL_CONFIG || undefined);
  let tree: unknown = {};
  if (source !== undefined) {
    let text: string;
    try {
      text = readFileSync(source, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read configuration file ${source}: ${(err as Error).message}`);
    }
    const doc = parseDocument(text, { uniqueKeys: true });
    if (doc.errors.length > 0) {
      throw new ConfigError(`invalid YAML in ${source}:\n  ${doc.errors.map((e) => e.message.split('\n')[0]).join('\n  ')}`);
    }
    tree = doc.toJS() as unknown;
    try {
      tree = substituteEnv(tree, env);
    } catch (err) {
      if (err instanceof SubstitutionError) throw new ConfigError(`invalid configuration in ${source}:\n  ${err.path}: ${err.message}`);
      throw err;
    }
  }
  const config = validateConfig(tree, source);
  return { config, source, hash: hashConfig(config) };
}

/**
 * A deep copy of the config with every secret-looking value replaced by `"***"`: keys such as
 * password or token, every header value and body (http-check jobs), a webhook URL's path, and in
 * URLs the credentials and secret-looking query parameters (`api_key=`).
 */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (isSecretKey(key) && typeof value === 'string' && value !== '') return '***';
  if (typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return maskUrls(value);
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key));
  // Every value under `headers` counts as a secret (an Authorization or API-key header); so does a
  // webhook URL's path (chat webhooks carry their token in it).
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, key === 'webhook' && k === 'url' && typeof v === 'string' ? maskPath(v) : maskSecrets(v, key === 'headers' ? key : k)]));
  }
  return value;
}
