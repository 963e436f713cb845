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

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  return JSON.stringify(value) ?? typeof value;
}

/** One line per problem, each naming the key path (e.g. `jobs.scheduled[0].schedule: ...`). */
export function formatIssue(issue: z.core.$ZodIssue): string[] {
  const at = formatPath(issue.path);
  const prefix = at ? `${at}: ` : '';
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => `${at ? `${at}.` : ''}${key}: unknown key`);
    case 'invalid_type':
      return [`${prefix}expected ${issue.expected}, got ${describe(issue.input)}`];
    case 'invalid_value':
      return [`${prefix}expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(issue.input)}`];
    case 'invalid_union':
      // Our unions are "number or string with units": the string branch carries the useful message.
      return issue.errors.flat().length > 0 ? issue.errors.flat().flatMap((inner) => formatIssue({ ...inner, path: [...issue.path, ...inner.path] })).slice(-1) : [`${prefix}${issue.message}`];
    default:
      return [`${prefix}${issue.message}${issue.code === 'custom' || issue.input === undefined ? '' : `, got ${describe(issue.input)}`}`];
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

const SECRET_KEY = /password|secret|token|credential/i;

/** A deep copy of the config with every secret-looking value, and passwords in URLs, replaced by `"***"`. */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (SECRET_KEY.test(key) && typeof value === 'string' && value !== '') return '***';
  if (typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*@/i.test(value)) return value.replace(/(:\/\/)[^/@\s]*@/, '$1***@');
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]));
  return value;
}
