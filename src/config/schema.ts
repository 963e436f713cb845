import { z } from 'zod';
import { cronError, jobSpecSchema, SYSTEM_CHECK_JOB } from '../jobs/spec.js';
import { boolean, byteSize, decimal, duration, integer, listenAddress, MAX_TIMER_MS, splitHostPort } from './units.js';

/** TLS for a listener; mTLS when `client_ca_file` is set. Absent means plaintext. */
const serverTls = z
  .strictObject({
    /** PEM certificate chain. */
    cert_file: z.string().min(1),
    /** PEM private key. */
    key_file: z.string().min(1),
    /** PEM CA bundle that client certificates must chain to; enables mTLS. */
    client_ca_file: z.string().min(1).optional(),
    /** With `client_ca_file`: refuse clients without a valid certificate (default true). */
    require_client_cert: boolean.default(true),
  })
  .optional();

const listener = (address: string) =>
  z.strictObject({
    /** host:port to bind. Data ports default to loopback. */
    address: listenAddress.default(address),
    tls: serverTls,
  });

const retention = z.strictObject({
  traces: duration().prefault('90d'),
  logs: duration().prefault('90d'),
  metrics: duration().prefault('90d'),
  events: duration().prefault('90d'),
});

const clickhouse = z.strictObject({
  /** HTTP(S) URL of a ClickHouse server or load balancer; setting it selects the server transport. */
  url: z.url({ protocol: /^https?$/, error: (i) => `expected a URL such as "http://clickhouse:8123", got ${JSON.stringify(i.input)}` }).optional(),
  username: z.string().default('default'),
  password: z.string().default(''),
  database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a database name of letters, digits and underscores').default('default'),
  /** Cluster name: DDL runs `ON CLUSTER <name>`. */
  cluster: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a cluster name').optional(),
  /** Table engine for the MergeTree tables, e.g. `ReplicatedMergeTree` on a cluster. */
  table_engine: z
    .strictObject({
      name: z.string().regex(/^[A-Za-z]*MergeTree$/, 'expected a MergeTree-family engine name').default('MergeTree'),
      params: z.string().default(''),
    })
    .optional(),
  tls: z
    .strictObject({
      ca_file: z.string().optional(),
      cert_file: z.string().optional(),
      key_file: z.string().optional(),
    })
    .optional(),
  request_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('30s'),
  max_open_connections: integer({ min: 1, max: 1000 }).default(10),
});

const regexList = z.array(z.string().refine((p) => {
  try {
    new RegExp(p);
    return true;
  } catch {
    return false;
  }
}, 'expected a valid regular expression'));

const ingest = z.strictObject({
  /**
   * When an exporter is answered: `stored` once ClickHouse confirmed the insert; `queued` once the
   * data is in the on-disk queue (survives kill -9 and ClickHouse outages).
   */
  ack: z.enum(['stored', 'queued']).default('stored'),
  memory: z
    .strictObject({
      /** Hard limit of decoded data held in memory. */
      limit: byteSize.prefault('512MiB'),
      /** Data is refused (retryable) once limit - spike is passed. */
      spike: byteSize.prefault('128MiB'),
    })
    .prefault({}),
  batch: z
    .strictObject({
      /** Rows per insert, per table. */
      max_rows: integer({ min: 1, max: 1_000_000 }).default(10_000),
      /** Longest a row waits for its batch. */
      max_delay: duration({ min: 1, max: MAX_TIMER_MS }).prefault('200ms'),
    })
    .prefault({}),
  retry: z
    .strictObject({
      initial_interval: duration({ min: 1, max: MAX_TIMER_MS }).prefault('100ms'),
      max_interval: duration({ min: 1, max: MAX_TIMER_MS }).prefault('5s'),
      /**
       * With ack: stored, give up on a batch after this long and answer "retry later". Keep it below
       * the exporters' timeout (10 s in the SDKs), or a client may retry a batch that then lands.
       */
      max_elapsed: duration({ max: MAX_TIMER_MS }).prefault('8s'),
    })
    .prefault({}),
  queue: z
    .strictObject({
      /** Directory of the write-ahead log used by ack: queued. */
      path: z.string().min(1).default('./queue'),
      /** Bytes the queue may hold; past it data is refused (retryable). */
      max_size: byteSize.prefault('1GiB'),
      /** Bytes per segment file. */
      segment_size: byteSize.prefault('64MiB'),
      /**
       * Rows per insert from the queue. Exporters do not wait for these inserts, so they can be much
       * larger than ingest.batch: fewer, bigger parts for ClickHouse to merge.
       */
      max_rows: integer({ min: 1, max: 1_000_000 }).default(25_000),
      /** Longest queued data waits for its insert batch to fill. */
      max_delay: duration({ min: 1, max: MAX_TIMER_MS }).prefault('1s'),
      /**
       * How long ClickHouse may refuse a queued batch while it answers (not unreachable, not a full
       * disk) before the batch is split in halves to find the records it refuses; those go to the
       * dead-letter directory. Also how long a dead-letter write is retried before what it held is dropped.
       */
      poison_timeout: duration({ min: 1, max: MAX_TIMER_MS }).prefault('5m'),
      /** Bytes the dead-letter directory may hold, apart from max_size; past it the oldest files are removed. */
      dead_letter_max_size: byteSize.prefault('64MiB'),
    })
    .prefault({}),
  redaction: z
    .strictObject({
      enabled: boolean.default(true),
      /** Include the built-in patterns (authorization, cookies, passwords, tokens, API keys, card numbers). */
      defaults: boolean.default(true),
      /** Extra key patterns: values of matching attribute keys are replaced whole. */
      keys: regexList.default([]),
      /** Extra value patterns: matching text is replaced wherever it appears. */
      values: regexList.default([]),
      replacement: z.string().default('[REDACTED]'),
    })
    .prefault({}),
  enrichment: z
    .strictObject({
      enabled: boolean.default(true),
      /** Environment variable -> resource attribute, added when the data lacks it. */
      from_env: z.record(z.string(), z.string()).optional(),
    })
    .prefault({}),
  red_metrics: z
    .strictObject({
      enabled: boolean.default(true),
      /** Most label sets kept; beyond it spans count under service_name="__overflow__". */
      max_series: integer({ min: 1, max: 1_000_000 }).default(2_000),
    })
    .prefault({}),
});

/** Who may call what: `ingest` (OTLP, events), `query`, `admin` (/status, SystemService), `ratelimit`. */
export const SCOPES = ['ingest', 'query', 'admin', 'ratelimit'] as const;

/** One API token. */
export const apiToken = z.strictObject({
  /** Names the token in logs and metrics (the token itself is never logged). */
  name: z.string().min(1),
  /** The secret, sent as `authorization: Bearer <token>`; at least 16 characters. */
  token: z.string().min(16, 'must be at least 16 characters'),
  scopes: z.array(z.enum(SCOPES)).min(1),
  /** Binds the token to one tenant: it writes and reads only that tenant's data. */
  tenant: z.string().min(1).optional(),
});

const auth = z.strictObject({
  /** Require API tokens on the APIs (probes and /metrics stay open). May be off only while every listener binds loopback. */
  enabled: boolean.default(false),
  tokens: z.array(apiToken).default([]),
  /** A YAML file holding a list of tokens of the same shape (for example a mounted Kubernetes Secret). */
  tokens_file: z.string().min(1).optional(),
});

/** Where a Redis is: a URL (standalone), Sentinel addresses or Cluster nodes. */
const redisConnection = z.strictObject({
  url: z.string().regex(/^rediss?:\/\//, 'expected a URL such as "redis://redis:6379"').optional(),
  cluster: z.array(listenAddress).optional(),
  sentinels: z.array(listenAddress).optional(),
  sentinel_name: z.string().min(1).default('mymaster'),
  password: z.string().optional(),
});

const jobs = z.strictObject({
  /** Names this agent in run records and leases; default: $HOSTNAME (the pod name), else the host name. */
  instance: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'expected 1-128 letters, digits, ".", "_" or "-"').optional(),
  /** On-demand jobs running at once. */
  max_concurrent: integer({ min: 1, max: 64 }).default(2),
  /** On-demand jobs waiting to run; past it SubmitJob answers RESOURCE_EXHAUSTED. */
  queue_size: integer({ min: 0, max: 100_000 }).default(100),
  /** Where export jobs write their files. */
  export_dir: z.string().min(1).default('./exports'),
  /** A cluster job's lease lasts this long unless renewed (renewed at a third of it while the job runs). */
  lease_ttl: duration({ min: 1000, max: MAX_TIMER_MS }).prefault('15s'),
  /** Redis for cluster-scoped jobs' leases; default: ratelimit.redis. Without one, cluster jobs run on every replica. */
  redis: redisConnection.extend({ key_prefix: z.string().default('heimdall:jobs:') }).optional(),
  /** The built-in system check (job `system-check`), which feeds readiness. */
  system_check: z
    .strictObject({
      enabled: boolean.default(true),
      schedule: z.string().default('*/30 * * * * *'),
      /** Overall score (0-100) under which the agent reports not ready. */
      threshold: integer({ min: 0, max: 100 }).default(50),
    })
    .prefault({}),
  /** Jobs defined here; reconciled at start and on reload (SIGHUP). */
  scheduled: z.array(jobSpecSchema).default([]),
});

/** Whether a listen address only accepts connections from this host. */
export function isLoopback(address: string): boolean {
  const host = splitHostPort(address)?.host ?? '';
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The whole configuration. Every key has a default, so an empty file (or none) is valid. */
export const configSchema = z.strictObject({
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') }).prefault({}),
  server: z
    .strictObject({
      grpc: listener('127.0.0.1:4317')
        .extend({ max_recv_msg_size: byteSize.prefault('4MiB') })
        .prefault({}),
      otlp_http: listener('127.0.0.1:4318')
        .extend({
          max_body_size: byteSize.prefault('20MiB'),
          /** Origins allowed to send OTLP/HTTP from browsers; empty disables CORS. A bare "*" is refused. */
          cors_allowed_origins: z.array(z.string().refine((o) => o !== '*', 'a bare "*" is not allowed; list the origins')).default([]),
        })
        .prefault({}),
      /** Probes, /metrics and /status. Loopback by default; on a pod IP (for probes and Prometheus) it needs auth on. */
      admin: listener('127.0.0.1:9464').prefault({}),
    })
    .prefault({}),
  storage: z
    .strictObject({
      /** `embedded` (chdb, in process) or `server` (ClickHouse over HTTP); default: server when a URL is set. */
      mode: z.enum(['embedded', 'server']).optional(),
      embedded: z
        .strictObject({
          path: z.string().min(1).default('./data'),
          /**
           * Bytes the embedded store may hold on disk; none: no limit but the disk's. Past 90% the oldest
           * partitions are dropped until it is under 75%; at the limit inserts are refused (retryable).
           * Set it when the store lives on a volume of a fixed size (an emptyDir with a sizeLimit).
           */
          max_size: byteSize.optional(),
        })
        .prefault({}),
      clickhouse: clickhouse.prefault({}),
      /** Apply schema migrations at startup. */
      migrate_on_start: boolean.default(true),
      retention: retention.prefault({}),
      /** Backoff between connection attempts while storage is unreachable. */
      retry: z.strictObject({ initial_interval: duration({ min: 1, max: MAX_TIMER_MS }).prefault('500ms'), max_interval: duration({ min: 1, max: MAX_TIMER_MS }).prefault('30s') }).prefault({}),
      /** How often a reachable storage is checked again. */
      health_check_interval: duration({ min: 100, max: MAX_TIMER_MS }).prefault('10s'),
    })
    .prefault({}),
  ingest: ingest.prefault({}),
  auth: auth.prefault({}),
  ratelimit: z
    .strictObject({
      /** A descriptor file, or a directory of them, in envoyproxy/ratelimit's format; none: no limits. */
      config_path: z.string().min(1).optional(),
      /** Local buckets kept at most; an evicted key comes back as a full bucket. */
      max_keys: integer({ min: 1, max: 10_000_000 }).default(100_000),
      /** Refusals are written as one event per domain, limit and entity per this window. */
      over_limit_window: duration({ min: 1000, max: MAX_TIMER_MS }).prefault('1m'),
      /** Also answer the legacy draft-03 X-RateLimit-* headers. */
      legacy_headers: boolean.default(false),
      /** The security layer: mode, block list (changed through approved actions). */
      security: z
        .strictObject({
          /** Mode at first start; afterwards the stored mode applies. */
          mode: z.enum(['normal', 'elevated', 'lockdown']).default('normal'),
          /** Elevated mode multiplies every limit by this. */
          elevated_factor: decimal({ min: 0.01, max: 1 }).default(0.5),
          /** Descriptor entries (key=value) still checked in lockdown; everything else is refused. */
          lockdown_allow: z.array(z.string().regex(/^[^=\s]+=\S+$/, 'expected key=value')).default([]),
          /** A pending action expires after this long. */
          approval_ttl: duration({ min: 1000, max: MAX_TIMER_MS }).prefault('1h'),
          /** Over-limit hits of one entity in one window that make an incident on the dashboard. */
          incident_threshold: integer({ min: 1, max: 1_000_000_000 }).default(100),
        })
        .prefault({}),
      /** Shared buckets for limits with `backend: redis`: standalone (url), Sentinel or Cluster. */
      redis: redisConnection
        .extend({
          /** Longest wait for one check; past it failure_mode answers. */
          timeout: duration({ min: 1, max: 10_000 }).prefault('5ms'),
          /** What a check answers when Redis cannot: allow (as Envoy's default) or deny. */
          failure_mode: z.enum(['allow', 'deny']).default('allow'),
          breaker: z.strictObject({ failures: integer({ min: 1, max: 1000 }).default(5), cooldown: duration({ min: 1, max: MAX_TIMER_MS }).prefault('2s') }).prefault({}),
          key_prefix: z.string().default('heimdall:rl:'),
        })
        .optional(),
    })
    .prefault({}),
  jobs: jobs.prefault({}),
  events: z
    .strictObject({
      /** Largest payload of one event, as JSON. */
      max_payload: byteSize.prefault('64KiB'),
    })
    .prefault({}),
  telemetry: z
    .strictObject({
      tracing: z
        .strictObject({
          enabled: boolean.default(false),
          /** OTLP/gRPC endpoint for the agent's own spans. */
          endpoint: z.url({ protocol: /^https?$/, error: (i) => `expected an http(s) URL such as "http://collector:4317", got ${JSON.stringify(i.input)}` }).default('http://127.0.0.1:4317'),
          sample_ratio: decimal({ min: 0, max: 1 }).default(1),
        })
        .prefault({}),
    })
    .prefault({}),
  shutdown: z
    .strictObject({
      /** After SIGTERM, time to keep serving while health reports NOT_SERVING so load balancers drain. */
      drain: duration({ max: MAX_TIMER_MS }).prefault('2s'),
      /** Hard limit for the whole shutdown; past it the process exits non-zero. */
      timeout: duration({ min: 1000, max: MAX_TIMER_MS }).prefault('30s'),
    })
    .prefault({}),
}).superRefine((c, ctx) => {
  const mode = c.storage.mode ?? (c.storage.clickhouse.url ? 'server' : 'embedded');
  if (mode === 'server' && !c.storage.clickhouse.url) {
    ctx.addIssue({ code: 'custom', path: ['storage', 'clickhouse', 'url'], message: 'is required when storage.mode is "server"' });
  }
  if (mode === 'embedded' && c.storage.clickhouse.cluster) {
    ctx.addIssue({ code: 'custom', path: ['storage', 'clickhouse', 'cluster'], message: 'needs a ClickHouse server: the embedded engine has no cluster (set storage.clickhouse.url, or remove the cluster)' });
  }
  if (mode === 'embedded' && /^(Replicated|Shared)/.test(c.storage.clickhouse.table_engine?.name ?? '')) {
    ctx.addIssue({ code: 'custom', path: ['storage', 'clickhouse', 'table_engine', 'name'], message: 'replicated engines need a ClickHouse server, not the embedded engine' });
  }
  if (c.shutdown.drain >= c.shutdown.timeout) {
    ctx.addIssue({ code: 'custom', path: ['shutdown', 'drain'], message: `must be shorter than shutdown.timeout (${c.shutdown.timeout} ms)` });
  }
  if (c.ingest.queue.segment_size * 4 > c.ingest.queue.max_size) {
    // The segment being written is released only when the next one starts: keep it a small part of the bound.
    ctx.addIssue({ code: 'custom', path: ['ingest', 'queue', 'segment_size'], message: `must be at most a quarter of ingest.queue.max_size (${c.ingest.queue.max_size} bytes)` });
  }
  if (c.ingest.memory.spike >= c.ingest.memory.limit) {
    ctx.addIssue({ code: 'custom', path: ['ingest', 'memory', 'spike'], message: 'must be smaller than ingest.memory.limit' });
  }
  if (!c.auth.enabled) {
    const exposed = (['grpc', 'otlp_http', 'admin'] as const).filter((l) => !isLoopback(c.server[l].address));
    if (exposed.length > 0) {
      const which = exposed.map((l) => `server.${l}.address (${c.server[l].address})`).join(', ');
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'enabled'],
        message: `is false, but ${which} ${exposed.length > 1 ? 'are' : 'is'} not loopback: either turn auth on (auth.enabled: true with auth.tokens or auth.tokens_file), or bind every listener to loopback (127.0.0.1 or ::1)`,
      });
    }
  } else if (c.auth.tokens.length === 0 && !c.auth.tokens_file) {
    ctx.addIssue({ code: 'custom', path: ['auth', 'tokens'], message: 'needs at least one token (or auth.tokens_file) when auth.enabled is true' });
  }
  const names = new Set<string>();
  for (const [i, j] of c.jobs.scheduled.entries()) {
    if (names.has(j.name) || (j.name === SYSTEM_CHECK_JOB && c.jobs.system_check.enabled)) ctx.addIssue({ code: 'custom', path: ['jobs', 'scheduled', i, 'name'], message: `${JSON.stringify(j.name)} is defined twice` });
    names.add(j.name);
  }
  const cron = cronError(c.jobs.system_check.schedule);
  if (cron) ctx.addIssue({ code: 'custom', path: ['jobs', 'system_check', 'schedule'], message: cron });
  if (c.storage.retry.initial_interval > c.storage.retry.max_interval) {
    ctx.addIssue({ code: 'custom', path: ['storage', 'retry', 'initial_interval'], message: 'must not exceed storage.retry.max_interval' });
  }
});

/** The validated configuration, with defaults filled in and durations/sizes in ms/bytes. */
export type Config = z.output<typeof configSchema>;
