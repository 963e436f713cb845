import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from '../config/zod.js';
import { apiToken, type Config, type SCOPES } from '../config/schema.js';
import { watchPath, type PathWatch } from '../config/watch.js';
import { Counter, type Registry } from 'prom-client';
import type { HealthRegistry } from '../health/registry.js';
import type { Logger } from '../telemetry/logger.js';

/** What a token allows: `ingest` (OTLP, events), `query`, `admin` (/status, SystemService), `ratelimit`. */
export type Scope = (typeof SCOPES)[number];

/**
 * What a service or route requires: a scope, or `admin:tenant` for admin calls that hold a
 * tenant-bound token to its tenant themselves (a tenant-bound token is refused every other admin call).
 */
export type RequiredScope = Scope | 'admin:tenant';

/** Who is calling: the token's name, scopes and tenant. */
export interface Principal {
  name: string;
  scopes: ReadonlySet<Scope>;
  /** Set for tenant-bound tokens: the caller writes and reads only this tenant's data. */
  tenant: string | undefined;
}

/** The outcome of checking a call: allowed (with the caller, when auth is on), or refused and why. */
export type AuthResult = { ok: true; principal: Principal | undefined } | { ok: false; reason: 'unauthenticated' | 'forbidden'; message: string };

/** A token as another isolate checks it: its SHA-256 digest (hex), its name, whether it holds the scope asked for. */
export interface TokenDigest {
  digest: string;
  name: string;
  allowed: boolean;
}

/** Checks API tokens. Tokens are compared in constant time and never logged. */
export interface Authenticator {
  readonly name: 'auth';
  readonly enabled: boolean;
  /** Checks an `authorization` header (or metadata) value for a call that needs `scope`; with auth off, every call passes. */
  check(authorization: string | undefined, scope: RequiredScope): AuthResult;
  /**
   * The tokens as another isolate checks them (the rate-limit worker's listener): each token's
   * SHA-256 digest (hex), name, and whether it holds `scope`; empty with auth off. Never the tokens.
   */
  digests(scope: Scope): TokenDigest[];
  /**
   * Takes the tokens of a reloaded `auth` section, reading its `tokens_file` again. When they
   * cannot be used, the current tokens stay, the reason is logged and the `auth` component is
   * degraded until a later reload succeeds. Never throws. (`enabled` applies after a restart only.)
   */
  reload(config: Config['auth']): void;
  /**
   * Calls `listener` after every reload that changed the tokens, so calls that outlive a check (response
   * streams) can check their token again; returns the unsubscribe function.
   */
  onReload(listener: () => void): () => void;
  /** Watches `tokens_file` and reloads it when it changes (a Secret volume's symlink swap included). */
  start(): Promise<void>;
  /** Stops watching. Safe to call twice. */
  shutdown(): Promise<void>;
}

/** Options for createAuthenticator. */
export interface AuthenticatorOptions {
  logger: Logger;
  health: HealthRegistry;
  metrics: Registry;
}

/** A token file that cannot be used; the message names the file and the entry at fault, never a token. */
export class TokenFileError extends Error {
  override name = 'TokenFileError';
}

/**
 * Reads and validates a tokens file (a YAML list of tokens); throws TokenFileError naming the file and
 * the entry at fault. A YAML error or warning (an unknown tag, a duplicate key) refuses the file and is
 * named by its code, line and column only: the parser's own messages quote the file, which holds
 * secrets, and nothing is printed (the `yaml` package's `parse` writes warnings to stderr).
 */
function readTokenFile(path: string): Array<z.output<typeof apiToken>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TokenFileError(`cannot read auth.tokens_file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const doc = parseDocument(text);
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const at = problem.linePos?.[0];
    throw new TokenFileError(`auth.tokens_file ${path} is not valid YAML: ${problem.code}${at ? ` at line ${at.line}, column ${at.col}` : ''}`);
  }
  const parsed: unknown = doc.toJS();
  // An empty file is most likely one being written: "[]" says "no tokens" on purpose.
  if (parsed === null || parsed === undefined) throw new TokenFileError(`auth.tokens_file ${path} is empty (write [] for a file without tokens)`);
  const result = z.array(apiToken).safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new TokenFileError(`auth.tokens_file ${path}: ${issue ? `[${issue.path.join('.')}] ${issue.message}` : 'expected a list of tokens'}`);
  }
  return result.data;
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

interface Entry {
  digest: Buffer;
  principal: Principal;
}

/** The tokens of an `auth` section (inline, then from `tokens_file`); throws TokenFileError, also for two tokens with one value. */
function loadEntries(config: Config['auth']): Entry[] {
  const tokens = [...config.tokens, ...(config.tokens_file ? readTokenFile(config.tokens_file) : [])];
  const entries = tokens.map((t) => ({ digest: digest(t.token), principal: { name: t.name, scopes: new Set(t.scopes), tenant: t.tenant } satisfies Principal }));
  const seen = new Set<string>();
  for (const e of entries) {
    const key = e.digest.toString('hex');
    if (seen.has(key)) throw new TokenFileError(`auth: token "${e.principal.name}" has the same value as another token`);
    seen.add(key);
  }
  return entries;
}

/** Checks the tokens of an `auth` section as the agent would load them (tokens_file read); returns how many. Throws TokenFileError. */
export function checkTokens(config: Config['auth']): number {
  return loadEntries(config).length;
}

/**
 * Creates the authenticator from the `auth` config, reading `tokens_file` when set (throws
 * TokenFileError when it cannot be used at start). Duplicate token values are refused.
 */
export function createAuthenticator(config: Config['auth'], options: AuthenticatorOptions): Authenticator {
  const logger = options.logger.child({ component: 'auth' });
  const reporter = options.health.register('auth', { gate: 'none' });
  const reloadErrors = new Counter({ name: 'heimdall_auth_reload_errors_total', help: 'Token reloads refused (the previous tokens stay): an unreadable or invalid tokens file.', registers: [options.metrics] });
  let entries = loadEntries(config);
  let current = config;
  const listeners = new Set<() => void>();
  let watch: PathWatch | undefined;
  let started = false;
  reporter.set('ready', `${entries.length} tokens`);

  const watchFile = (): void => {
    watch?.close();
    watch = current.tokens_file ? watchPath(current.tokens_file, () => reload(current), logger) : undefined;
  };
  const reload = (next: Config['auth']): void => {
    const fileChanged = next.tokens_file !== current.tokens_file;
    current = next;
    if (started && fileChanged) watchFile();
    let loaded: Entry[];
    try {
      loaded = loadEntries(next);
    } catch (err) {
      const reason = (err as Error).message;
      reloadErrors.inc();
      reporter.set('degraded', `tokens not reloaded, the previous ${entries.length} kept: ${reason}`);
      logger.error({ reason }, 'tokens not reloaded: keeping the previous tokens');
      return;
    }
    // Each token by name, as it allows: its value (digest), scopes and tenant.
    const shape = (e: Entry) => JSON.stringify([e.digest.toString('hex'), [...e.principal.scopes].sort(), e.principal.tenant ?? null]);
    const before = new Map(entries.map((e) => [e.principal.name, shape(e)]));
    const after = new Map(loaded.map((e) => [e.principal.name, shape(e)]));
    const added = [...after.keys()].filter((n) => !before.has(n));
    const removed = [...before.keys()].filter((n) => !after.has(n));
    const changed = [...after].filter(([n, s]) => before.has(n) && before.get(n) !== s).map(([n]) => n);
    const all = (list: Entry[]) => list.map((e) => `${e.principal.name} ${shape(e)}`).sort().join('\n');
    const same = all(loaded) === all(entries);
    entries = loaded;
    reporter.set('ready', `${entries.length} tokens`);
    if (same) return;
    logger.info({ tokens: loaded.length, added, removed, changed }, 'tokens reloaded');
    for (const listener of listeners) listener();
  };

  return {
    name: 'auth',
    enabled: config.enabled,
    check(authorization, scope) {
      if (!config.enabled) return { ok: true, principal: undefined };
      const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
      if (!m?.[1]) return { ok: false, reason: 'unauthenticated', message: 'missing API token: send "authorization: Bearer <token>"' };
      const presented = digest(m[1]);
      // Compare against every token, without stopping at a match: the time does not depend on which matched.
      let found: Principal | undefined;
      for (const e of entries) if (timingSafeEqual(e.digest, presented)) found ??= e.principal;
      if (!found) return { ok: false, reason: 'unauthenticated', message: 'unknown API token' };
      const needed: Scope = scope === 'admin:tenant' ? 'admin' : scope;
      if (!found.scopes.has(needed)) return { ok: false, reason: 'forbidden', message: `token "${found.name}" lacks the "${needed}" scope` };
      if (scope === 'admin' && found.tenant !== undefined) {
        return { ok: false, reason: 'forbidden', message: `token "${found.name}" is bound to tenant "${found.tenant}", and this call acts on every tenant: use a token without a tenant` };
      }
      return { ok: true, principal: found };
    },
    digests: (scope) => (config.enabled ? entries.map((e) => ({ digest: e.digest.toString('hex'), name: e.principal.name, allowed: e.principal.scopes.has(scope) })) : []),
    reload,
    onReload(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start() {
      started = true;
      watchFile();
    },
    async shutdown() {
      started = false;
      watch?.close();
      watch = undefined;
    },
  };
}
