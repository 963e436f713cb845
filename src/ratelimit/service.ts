import { create, fromBinary, fromJson, toJson, type JsonValue, type MessageInitShape } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RateLimitDescriptor } from '../gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitResponseSchema, RateLimitService, type RateLimitRequest } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import { watchPath, type PathWatch } from '../config/watch.js';
import type { HealthRegistry } from '../health/registry.js';
import { GrpcError } from '../server/errors.js';
import type { GrpcServer } from '../server/grpc.js';
import { BodyTooLarge, readSmallBody, sendJson, type HttpServer } from '../server/http.js';
import type { Logger } from '../telemetry/logger.js';
import { seriesShape, type SeriesLimits } from '../telemetry/series-limits.js';
import { createLocalBackend, createRedisBackend, type RedisBackendOptions } from './backends.js';
import type { Decision } from './bucket.js';
import type { OverLimitReporter } from './over-limit.js';
import type { Security } from './security.js';
import { bucketKey, shownEntries } from './keys.js';
import { encodeRateLimitResponse, type WireResponse } from './wire.js';
import { loadRateLimitConfig, RateLimitConfigError, UNIT_SECONDS, type DescriptorNode, type Limit, type RateLimitConfig, type Unit } from './config.js';

/** Options for createRateLimiter. */
export interface RateLimiterOptions {
  /** A descriptor file or a directory of them (envoyproxy/ratelimit format); none: no limits. */
  configPath: string | undefined;
  /** Buckets kept in memory at most; an evicted bucket comes back full. */
  maxKeys: number;
  /** Bytes the local buckets may take, keys included; past it the least recently used go. */
  cacheBytes: number;
  /** Descriptor entry keys longer than this (characters) are refused with INVALID_ARGUMENT. */
  maxKeyLength: number;
  /** Bucket keys longer than this (bytes) are kept as a digest (see keys.ts). */
  maxBucketKeyLength: number;
  /** Shared buckets for limits with `backend: redis`; none: such limits make the file invalid. */
  redis?: Omit<RedisBackendOptions, 'now' | 'logger' | 'metrics'> | undefined;
  /** Also answer the legacy X-RateLimit-* headers (draft 03) besides RateLimit / RateLimit-Policy. */
  legacyHeaders: boolean;
  grpc: GrpcServer;
  /** Gets `POST /ratelimit/json` (for clients without gRPC). */
  http: HttpServer;
  logger: Logger;
  metrics: Registry;
  health: HealthRegistry;
  /** Monotonic milliseconds (tests pass a fake clock). */
  now?: () => number;
  /** Bounds on the metrics whose labels come from requests (descriptor values, domains). */
  seriesLimits: SeriesLimits;
  /** Label sets of each such metric family at most (the rest count as __overflow__). */
  maxSeries: number;
  /** Block list and security mode, consulted before any limit. */
  security?: Pick<Security, 'check'> | undefined;
  /** Where refusals are counted as aggregated events. */
  overLimit?: OverLimitReporter | undefined;
}

/** The rate-limit component: Envoy's RLS API over refilling token buckets, with hot-reloaded limits. */
export interface RateLimiter {
  readonly name: 'ratelimit';
  start(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Descriptors and entries one request may carry. */
const MAX_DESCRIPTORS = 64;
const MAX_ENTRIES = 32;
const MAX_UINT32 = 4_294_967_295;
const UNIT_CODE: Record<Unit, number> = { second: 1, minute: 2, hour: 3, day: 4, month: 5, year: 6, week: 7 };
const OVERRIDE_UNIT: Record<number, Unit | undefined> = { 1: 'second', 2: 'minute', 3: 'hour', 4: 'day', 5: 'month', 6: 'year', 7: 'week' };

/** The limit for one request descriptor, matched as envoyproxy/ratelimit does: key_value, then wildcard values, then key; depth must match. */
export function matchLimit(root: DescriptorNode, descriptor: RateLimitDescriptor): Limit | undefined {
  let node = root;
  const last = descriptor.entries.length - 1;
  for (const [i, { key, value }] of descriptor.entries.entries()) {
    const next = node.children.get(`${key}_${value}`) ?? node.wildcards.get(key)?.find((w) => value.startsWith(w.prefix))?.node ?? node.children.get(key);
    if (!next) return undefined;
    if (i === last) return next.limit;
    node = next;
  }
  return undefined;
}

/**
 * envoyproxy/ratelimit's per-descriptor statistics, in hits: total_hits, over_limit, near_limit
 * (allowed with 80% or more of the bucket used), within_limit, shadow_mode. The descriptor label is
 * the limit's place in the config; with detailed_metric (or a request's limit override) it names
 * the request's values too, so the label sets take the series limits: values cut to the length
 * limit, and past `maxSeries` label sets (or the /metrics size budget) hits count under "__overflow__".
 */
function createLimitStats(registry: Registry, limits: SeriesLimits, maxSeries: number) {
  const labelNames = ['domain', 'descriptor'] as const;
  const counter = (name: string, help: string) => new Counter({ name: `heimdall_ratelimit_${name}_total`, help, labelNames, registers: [registry] });
  const total = counter('total_hits', 'Hits checked, by domain and descriptor.');
  const over = counter('over_limit', 'Hits refused (over the limit, not in shadow mode), by domain and descriptor.');
  const near = counter('near_limit', 'Hits allowed with 80% or more of the bucket used, by domain and descriptor.');
  const within = counter('within_limit', 'Hits allowed, by domain and descriptor.');
  const shadow = counter('shadow_mode', 'Hits over the limit but allowed by shadow mode, by domain and descriptor.');
  // Bound children per label set: one map lookup per check instead of five label hashes.
  const series = limits.family({
    name: 'heimdall_ratelimit_total_hits_total',
    labelNames,
    maxSeries,
    shape: seriesShape(labelNames, ['total_hits', 'over_limit', 'near_limit', 'within_limit', 'shadow_mode'].map((n) => ({ name: `heimdall_ratelimit_${n}_total` }))),
    bind: (labels) => ({ total: total.labels(labels), over: over.labels(labels), near: near.labels(labels), within: within.labels(labels), shadow: shadow.labels(labels) }),
  });
  return {
    record(domain: string, limit: Limit, d: RateLimitDescriptor, hits: number, decision: { allowed: boolean; remaining: number }, capacity: number): void {
      const descriptor = limit.detailedMetric ? `${limit.path}|${d.entries.map((e) => `${e.key}_${e.value}`).join('.')}` : limit.path;
      const bound = series.get([domain, descriptor]);
      bound.total.inc(hits);
      if (!decision.allowed && !limit.shadowMode) bound.over.inc(hits);
      else if (!decision.allowed) bound.shadow.inc(hits);
      else {
        bound.within.inc(hits);
        if (decision.remaining <= capacity * 0.2) bound.near.inc(hits);
      }
    },
  };
}

/** The first limit in a tree that uses the Redis backend. */
function firstRedisLimit(node: DescriptorNode): Limit | undefined {
  if (node.limit?.backend === 'redis') return node.limit;
  for (const child of [...node.children.values(), ...[...node.wildcards.values()].flat().map((w) => w.node)]) {
    const found = firstRedisLimit(child);
    if (found) return found;
  }
  return undefined;
}

/**
 * Checks a request: INVALID_ARGUMENT naming the field for what Envoy's validation would refuse, and
 * for entry keys over `maxKeyLength` (keys come from Envoy's route configuration, not from clients:
 * a long one is a mistake or an attack). Long values are not refused: Envoy fails open on an error,
 * so a client could then pass any limit with one long header; they are digested in bucket keys.
 */
function validate(req: RateLimitRequest, maxKeyLength: number): void {
  const bad = (field: string, message: string) => new GrpcError(status.INVALID_ARGUMENT, `${field}: ${message}`);
  if (req.domain === '') throw bad('domain', 'is required');
  if (req.descriptors.length === 0) throw bad('descriptors', 'at least one descriptor is required');
  if (req.descriptors.length > MAX_DESCRIPTORS) throw bad('descriptors', `at most ${MAX_DESCRIPTORS} descriptors per request, got ${req.descriptors.length}`);
  req.descriptors.forEach((d, i) => {
    if (d.entries.length === 0) throw bad(`descriptors[${i}].entries`, 'at least one entry is required');
    if (d.entries.length > MAX_ENTRIES) throw bad(`descriptors[${i}].entries`, `at most ${MAX_ENTRIES} entries, got ${d.entries.length}`);
    d.entries.forEach((e, j) => {
      if (e.key === '') throw bad(`descriptors[${i}].entries[${j}].key`, 'is required');
      if (e.key.length > maxKeyLength) throw bad(`descriptors[${i}].entries[${j}].key`, `${e.key.length} characters, over ratelimit.max_key_length (${maxKeyLength})`);
      if (e.value === '') throw bad(`descriptors[${i}].entries[${j}].value`, 'is required');
    });
  });
}

/** A structured-field string for a policy name (quotes and backslashes escaped). */
const sfString = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/** Creates the rate limiter and adds `envoy.service.ratelimit.v3.RateLimitService` (scope `ratelimit`) to the gRPC server. */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const logger = options.logger.child({ component: 'ratelimit' });
  const reporter = options.health.register('ratelimit', { gate: 'none' });
  const now = options.now ?? (() => performance.now());
  let config: RateLimitConfig = new Map();
  let watcher: PathWatch | undefined;

  const stats = createLimitStats(options.metrics, options.seriesLimits, options.maxSeries);
  const refusalLabels = ['domain', 'reason'] as const;
  const refusalCounter = new Counter({ name: 'heimdall_security_refused_total', help: 'Descriptors refused by the security layer, by domain and reason (blocked, lockdown).', labelNames: refusalLabels, registers: [options.metrics] });
  // The domain is the request's: any text, so these label sets are limited too.
  const refusals = options.seriesLimits.family({
    name: 'heimdall_security_refused_total',
    labelNames: refusalLabels,
    maxSeries: options.maxSeries,
    shape: seriesShape(refusalLabels, [{ name: 'heimdall_security_refused_total' }]),
    bind: (labels) => refusalCounter.labels(labels),
  });
  const configErrors = new Counter({ name: 'heimdall_ratelimit_config_errors_total', help: 'Rate-limit configuration loads that failed (the previous configuration stays).', registers: [options.metrics] });
  const domains = new Gauge({ name: 'heimdall_ratelimit_domains', help: 'Domains in the loaded rate-limit configuration.', registers: [options.metrics] });
  const local = createLocalBackend({ maxKeys: options.maxKeys, maxBytes: options.cacheBytes, now, metrics: options.metrics });
  const shared = options.redis ? createRedisBackend({ ...options.redis, now, logger: options.logger, metrics: options.metrics, reporter: options.health.register('ratelimit-redis', { gate: 'none' }) }) : undefined;

  const load = (): void => {
    if (!options.configPath) {
      reporter.set('ready');
      return;
    }
    try {
      const next = loadRateLimitConfig(options.configPath);
      if (!shared) {
        const redisLimit = [...next.values()].map(firstRedisLimit).find((l) => l !== undefined);
        if (redisLimit) throw new RateLimitConfigError(options.configPath, undefined, `${redisLimit.path}: backend redis needs ratelimit.redis in the agent's configuration`);
      }
      // Limits that disappear stop protecting someone: say so loudly, naming the domains.
      const lost = [...config.keys()].filter((d) => !next.has(d));
      config = next;
      domains.set(config.size);
      reporter.set('ready');
      if (lost.length > 0) logger.error({ path: options.configPath, lost, domains: [...config.keys()] }, `rate-limit domains removed by the reload, no longer limited: ${lost.join(', ')}`);
      logger.info({ path: options.configPath, domains: [...config.keys()] }, 'rate-limit configuration loaded');
    } catch (err) {
      configErrors.inc();
      const reason = err instanceof RateLimitConfigError ? err.message : `cannot read ${options.configPath}: ${(err as Error).message}`;
      reporter.set('degraded', `rate-limit configuration not loaded, previous one kept: ${reason}`);
      logger.error(err instanceof RateLimitConfigError ? { file: err.file, line: err.line, reason: err.reason } : { err }, 'invalid rate-limit configuration; keeping the previous one');
    }
  };

  const shouldRateLimit = async (req: RateLimitRequest): Promise<WireResponse> => {
    validate(req, options.maxKeyLength);
    const root = config.get(req.domain);
    const requestHits = req.hitsAddend === 0 ? 1 : req.hitsAddend;
    // Match every descriptor first: a matched limit may replace others by name.
    const matched = req.descriptors.map((d) => {
      if (!root) return undefined;
      if (d.limit && d.limit.requestsPerUnit >= 0 && OVERRIDE_UNIT[d.limit.unit]) {
        const unit = OVERRIDE_UNIT[d.limit.unit] as Unit;
        const base = matchLimit(root, d);
        const path = `${req.domain}.${shownEntries(d.entries).map((e) => `${e.key}_${e.value}`).join('.')}`;
        return { ...(base ?? { name: undefined, unlimited: false, replaces: [], backend: 'local' as const, shadowMode: false, detailedMetric: false }), unit, requestsPerUnit: d.limit.requestsPerUnit, capacity: d.limit.requestsPerUnit, path: `${path}#override` } satisfies Limit;
      }
      return matchLimit(root, d);
    });
    const replaced = new Set(matched.flatMap((l) => l?.replaces ?? []));
    const policies: Array<{ name: string; quota: number; window: number; remaining: number; reset: number }> = [];
    let over = false;
    type Status = WireResponse['statuses'][number];
    // Local buckets answer synchronously: only a Redis-backed descriptor makes the check wait.
    const evaluate = (d: RateLimitDescriptor, i: number): Status | Promise<Status> => {
      const limit = matched[i];
      const verdict = options.security?.check(d.entries) ?? { refuse: false, factor: 1 };
      if (verdict.refuse) {
        over = true;
        refusals.get([req.domain, verdict.reason]).inc();
        options.overLimit?.record(req.domain, `security:${verdict.reason}`, shownEntries(d.entries), requestHits);
        return { code: RateLimitResponse_Code.OVER_LIMIT };
      }
      if (!limit || (limit.name !== undefined && replaced.has(limit.name))) {
        return { code: RateLimitResponse_Code.OK };
      }
      if (limit.unlimited) {
        return { code: RateLimitResponse_Code.OK, limitRemaining: MAX_UINT32 };
      }
      const hits = d.hitsAddend !== undefined ? Math.min(Number(d.hitsAddend), MAX_UINT32) : requestHits;
      // Elevated mode scales every bucket down (a separate, smaller bucket while it lasts).
      const capacity = verdict.factor === 1 || limit.capacity === 0 ? limit.capacity : Math.max(1, Math.floor(limit.capacity * verdict.factor));
      const spec = { capacity, ratePerMs: (limit.requestsPerUnit * verdict.factor) / (UNIT_SECONDS[limit.unit] * 1000) };
      const key = bucketKey(req.domain, d.entries, `${limit.path}\u0000${spec.capacity}/${limit.requestsPerUnit}/${limit.unit}`, options.maxBucketKeyLength);
      const finish = (decision: Decision): Status => {
        const overLimit = !decision.allowed && !limit.shadowMode;
        over ||= overLimit;
        stats.record(req.domain, limit, d, hits, decision, spec.capacity);
        if (!decision.allowed && !limit.shadowMode) options.overLimit?.record(req.domain, limit.path, shownEntries(d.entries), hits);
        // A bucket that never refills (0 per unit) reports a whole unit until reset.
        const resetMs = Number.isFinite(decision.resetMs) ? decision.resetMs : UNIT_SECONDS[limit.unit] * 1000;
        policies.push({
          name: limit.name ?? limit.path,
          quota: spec.capacity,
          window: spec.ratePerMs > 0 ? Math.ceil(spec.capacity / spec.ratePerMs / 1000) : UNIT_SECONDS[limit.unit],
          remaining: decision.remaining,
          reset: Math.ceil(resetMs / 1000),
        });
        return {
          code: overLimit ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK,
          currentLimit: { ...(limit.name ? { name: limit.name } : {}), requestsPerUnit: limit.requestsPerUnit, unit: UNIT_CODE[limit.unit] },
          limitRemaining: Math.min(decision.remaining, MAX_UINT32),
          durationUntilReset: { seconds: BigInt(Math.floor(resetMs / 1000)), nanos: Math.floor(resetMs % 1000) * 1_000_000 },
        };
      };
      const decided = (limit.backend === 'redis' && shared ? shared : local).take(key, spec, hits);
      return decided instanceof Promise ? decided.then(finish) : finish(decided);
    };
    const evaluated = req.descriptors.map(evaluate);
    const statuses = evaluated.some((st) => st instanceof Promise) ? await Promise.all(evaluated.map((st) => Promise.resolve(st))) : (evaluated as Status[]);
    // Headers for every matched policy (draft-ietf-httpapi-ratelimit-headers), and optionally the
    // legacy draft-03 X-RateLimit-* for the policy closest to its limit.
    const headers: Array<{ key: string; value: string }> = [];
    if (policies.length > 0) {
      headers.push({ key: 'RateLimit-Policy', value: policies.map((p) => `${sfString(p.name)};q=${p.quota};w=${p.window}`).join(', ') });
      headers.push({ key: 'RateLimit', value: policies.map((p) => `${sfString(p.name)};r=${p.remaining};t=${p.reset}`).join(', ') });
      if (options.legacyHeaders) {
        const closest = policies.reduce((a, b) => (b.remaining < a.remaining ? b : a));
        headers.push({ key: 'X-RateLimit-Limit', value: [String(closest.quota), ...policies.map((p) => `${p.quota};w=${p.window};name=${sfString(p.name)}`)].join(', ') });
        headers.push({ key: 'X-RateLimit-Remaining', value: String(closest.remaining) });
        headers.push({ key: 'X-RateLimit-Reset', value: String(closest.reset) });
      }
    }
    return { overallCode: over ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK, statuses, responseHeadersToAdd: headers };
  };

  options.grpc.addService(
    RateLimitService,
    {
      // The hot path: the reply is encoded by hand (see wire.ts).
      shouldRateLimit: {
        async raw(bytes: Buffer) {
          let req: RateLimitRequest;
          try {
            req = fromBinary(RateLimitRequestSchema, bytes);
          } catch (err) {
            throw new GrpcError(status.INVALID_ARGUMENT, `malformed ${RateLimitRequestSchema.typeName}: ${(err as Error).message}`);
          }
          return encodeRateLimitResponse(await shouldRateLimit(req));
        },
      },
    },
    'ratelimit',
  );
  // The same check over HTTP: a RateLimitRequest in the protobuf JSON mapping; 200 when OK, 429 when over limit.
  options.http.route(
    'POST',
    '/ratelimit/json',
    async (req, res) => {
      let request: RateLimitRequest;
      try {
        request = fromJson(RateLimitRequestSchema, JSON.parse((await readSmallBody(req, 1 << 20)).toString('utf8')) as JsonValue, { ignoreUnknownFields: true });
      } catch (err) {
        return sendJson(res, err instanceof BodyTooLarge ? 413 : 400, { error: `malformed RateLimitRequest: ${(err as Error).message}` });
      }
      try {
        const reply = create(RateLimitResponseSchema, (await shouldRateLimit(request)) as MessageInitShape<typeof RateLimitResponseSchema>);
        sendJson(res, reply.overallCode === RateLimitResponse_Code.OVER_LIMIT ? 429 : 200, toJson(RateLimitResponseSchema, reply));
      } catch (err) {
        if (err instanceof GrpcError && err.code === status.INVALID_ARGUMENT) return sendJson(res, 400, { error: err.message });
        throw err;
      }
    },
    'ratelimit',
  );

  return {
    name: 'ratelimit',
    async start() {
      options.overLimit?.start();
      load();
      // Watch the directory (a ConfigMap swaps a symlink; editors replace files): reload shortly after any change.
      if (options.configPath) watcher = watchPath(options.configPath, load, logger);
    },
    async shutdown() {
      watcher?.close();
      await shared?.close();
      options.overLimit?.shutdown();
      reporter.set('stopping');
    },
  };
}
