import { create, fromBinary, fromJson, toJson, type JsonValue, type MessageInitShape } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { RateLimitDescriptor } from '../gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js';
import { RateLimitRequestSchema, RateLimitResponse_Code, RateLimitResponseSchema, RateLimitService, type RateLimitRequest } from '../gen/envoy/service/ratelimit/v3/rls_pb.js';
import type { HealthRegistry } from '../health/registry.js';
import { GrpcError } from '../server/errors.js';
import type { GrpcServer } from '../server/grpc.js';
import { BodyTooLarge, readBody } from '../server/body.js';
import type { HttpServer } from '../server/http.js';
import { sendJson } from '../server/http-router.js';
import type { Logger } from '../telemetry/logger.js';
import type { SeriesLimits } from '../telemetry/series-limits.js';
import { createLocalBackend, createRedisBackend, type RedisBackendOptions } from './backends.js';
import type { Decision } from './bucket.js';
import { bucketSpec, limitStatus, matchDescriptors, MAX_UINT32, rateLimitHeaders, validate, type Policy } from './decide.js';
import { bucketKey, shownEntries } from './keys.js';
import { createLimitsFile } from './limits-file.js';
import type { OverLimitReporter } from './over-limit.js';
import type { Security } from './security.js';
import { createLimitStats } from './stats.js';
import { encodeRateLimitResponse, type WireResponse } from './wire.js';

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

/** Creates the rate limiter and adds `envoy.service.ratelimit.v3.RateLimitService` (scope `ratelimit`) to the gRPC server. */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const logger = options.logger.child({ component: 'ratelimit' });
  const reporter = options.health.register('ratelimit', { gate: 'none' });
  const now = options.now ?? (() => performance.now());
  const limits = createLimitsFile({ path: options.configPath, redis: Boolean(options.redis), logger, metrics: options.metrics, reporter });
  const stats = createLimitStats(options.metrics, options.seriesLimits, options.maxSeries);
  const local = createLocalBackend({ maxKeys: options.maxKeys, maxBytes: options.cacheBytes, now, metrics: options.metrics });
  const shared = options.redis ? createRedisBackend({ ...options.redis, now, logger: options.logger, metrics: options.metrics, reporter: options.health.register('ratelimit-redis', { gate: 'none' }) }) : undefined;

  type Status = WireResponse['statuses'][number];
  const shouldRateLimit = async (req: RateLimitRequest): Promise<WireResponse> => {
    validate(req, options.maxKeyLength);
    const matched = matchDescriptors(limits.current.get(req.domain), req);
    const requestHits = req.hitsAddend === 0 ? 1 : req.hitsAddend;
    const policies: Policy[] = [];
    let over = false;
    // Local buckets answer synchronously: only a Redis-backed descriptor makes the check wait.
    const evaluate = (d: RateLimitDescriptor, i: number): Status | Promise<Status> => {
      const verdict = options.security?.check(d.entries) ?? { refuse: false, factor: 1 };
      if (verdict.refuse) {
        over = true;
        stats.refused(req.domain, verdict.reason);
        options.overLimit?.record(req.domain, `security:${verdict.reason}`, shownEntries(d.entries), requestHits);
        return { code: RateLimitResponse_Code.OVER_LIMIT };
      }
      const m = matched[i];
      if (!m) return { code: RateLimitResponse_Code.OK };
      const { limit } = m;
      if (limit.unlimited) return { code: RateLimitResponse_Code.OK, limitRemaining: MAX_UINT32 };
      const hits = d.hitsAddend !== undefined ? Math.min(Number(d.hitsAddend), MAX_UINT32) : requestHits;
      const spec = bucketSpec(limit, verdict.factor);
      const key = bucketKey(req.domain, d.entries, `${limit.path}\u0000${spec.capacity}/${limit.requestsPerUnit}/${limit.unit}`, options.maxBucketKeyLength);
      const finish = (decision: Decision): Status => {
        const answer = limitStatus(limit, spec, decision);
        over ||= answer.over;
        policies.push(answer.policy);
        stats.record(req.domain, m, d, hits, decision, spec.capacity);
        if (answer.over) options.overLimit?.record(req.domain, limit.path, shownEntries(d.entries), hits);
        return answer.status;
      };
      const decided = (limit.backend === 'redis' && shared ? shared : local).take(key, spec, hits);
      return decided instanceof Promise ? decided.then(finish) : finish(decided);
    };
    const evaluated = req.descriptors.map(evaluate);
    const statuses = evaluated.some((st) => st instanceof Promise) ? await Promise.all(evaluated.map((st) => Promise.resolve(st))) : (evaluated as Status[]);
    return { overallCode: over ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK, statuses, responseHeadersToAdd: rateLimitHeaders(policies, options.legacyHeaders) };
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
        request = fromJson(RateLimitRequestSchema, JSON.parse((await readBody(req, { maxBytes: 1 << 20 })).toString('utf8')) as JsonValue, { ignoreUnknownFields: true });
      } catch (err) {
        return sendJson(res, err instanceof BodyTooLarge ? 413 : 400, { error: `malformed RateLimitRequest: ${(err as Error).message}` });
      }
      // An invalid request throws an AgentError: the router answers 400 with its message.
      const reply = create(RateLimitResponseSchema, (await shouldRateLimit(request)) as MessageInitShape<typeof RateLimitResponseSchema>);
      sendJson(res, reply.overallCode === RateLimitResponse_Code.OVER_LIMIT ? 429 : 200, toJson(RateLimitResponseSchema, reply));
    },
    { scope: 'ratelimit' },
  );

  return {
    name: 'ratelimit',
    async start() {
      options.overLimit?.start();
      limits.start();
    },
    async shutdown() {
      limits.close();
      await shared?.close();
      options.overLimit?.shutdown();
      reporter.set('stopping');
    },
  };
}
