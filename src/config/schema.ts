import { z } from './zod.js';
import { parseNetwork } from '../jobs/kinds/address-guard.js';
import { KIND_PARAMS } from '../jobs/kinds/params.js';
import { cronError, jobSpecSchema, SYSTEM_CHECK_JOB } from '../jobs/spec.js';
import { automationSchema } from './automation.js';
import { boolean, byteSize, byteSizeAtLeast, decimal, duration, formatBytes, integer, listenAddress, MAX_TIMER_MS } from './units.js';
import { splitHostPort } from './host-port.js';

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

/** What bounds every listener's connections: a cap, a reserve for new peers, and a handshake deadline. */
const connectionBounds = (maxConnections: number, reserved: number) => ({
  /**
   * Connections open at most (lowered at start to leave server.fd_reserve file descriptors free); past it a new one is closed at
   * once, except on HTTP listeners, where it takes the slot of an idle connection (no request in progress) of the peer holding most.
   */
  max_connections: integer({ min: 1, max: 1_000_000 }).default(maxConnections),
  /** The last this many of max_connections go only to peers holding fewer than half that many here: probes get in while one client holds the rest. Lowered with max_connections. */
  reserved_connections: integer({ min: 0, max: 100_000 }).default(reserved),
  /** A TLS handshake (and on gRPC, the first bytes of HTTP/2) must be done within this, or the connection is closed. */
  handshake_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('10s'),
});

/** HTTP/1.1 deadlines of a listener (slow clients are closed, not waited for). */
const httpTimeouts = (requestTimeout: string) => ({
  /** A request's headers must be in within this of the connection opening (or of the previous response); 408 and closed past it. */
  headers_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('10s'),
  /** A whole request (headers and body) must be in within this; 408 and closed past it. */
  request_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault(requestTimeout),
  /** A kept-alive connection without a new request for this long is closed. */
  idle_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('30s'),
});

const retention = z.strictObject({
  traces: duration().prefault('90d'),
  logs: duration().prefault('90d'),
  metrics: duration().prefault('90d'),
  events: duration().prefault('90d'),
});

const clickhouse = z.strictObject({
  /** HTTP(S) URL of a ClickHouse server or load balancer; setting it selects the server transport. */
  url: z.url({ protocol: /^https?$/, error: 'expected a URL such as "http://clickhouse:8123"' }).optional(),
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
  /** Compression of insert bodies (Content-Encoding): zstd (level 1), gzip (zlib's default level) or none. */
  insert_compression: z.enum(['zstd', 'gzip', 'none']).default('zstd'),
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
  /**
   * Values one request (OTLP, WriteEvents, one StreamEvents message) may decode into: items,
   * attributes, array and map entries, fields. Counted on the wire before decoding; past it the
   * request is refused for good (413 / INVALID_ARGUMENT). Decoding holds the event loop and memory
   * by values, not bytes.
   */
  max_elements: integer({ min: 1_000, max: 100_000_000 }).default(1_000_000),
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
  /** Runs of scheduled jobs at once (the built-in system check aside); a tick past it is skipped. */
  max_scheduled_runs: integer({ min: 1, max: 1000 }).default(16),
  /** Where export jobs write their files. */
  export_dir: z.string().min(1).default('./exports'),
  /** Bytes the export directory may hold, tenant folders included: an export that would pass it fails, naming it (and leaves no file). */
  export_max_size: byteSize.prefault('1GiB'),
  /** Bytes one tenant's export folder (`<export_dir>/tenant=<tenant>/`) may hold; past it that tenant's export fails, naming it. */
  tenant_export_max_size: byteSize.prefault('256MiB'),
  /** On-demand jobs of one tenant pending or running at once; past it SubmitJob from a tenant-bound token answers RESOURCE_EXHAUSTED. */
  max_submitted_per_tenant: integer({ min: 1, max: 100_000 }).default(4),
  /** Longest timeout a tenant-bound token may give a job (at least the default job timeout, 10m); a longer one is INVALID_ARGUMENT. */
  tenant_max_timeout: duration({ min: 600_000, max: MAX_TIMER_MS }).prefault('1h'),
  http_check: z
    .strictObject({
      /** Link-local or cloud metadata networks (CIDR or address) http-check jobs may reach anyway; refused otherwise. */
      allowed_networks: z.array(z.string().refine((n) => parseNetwork(n) !== undefined, 'expected an IP address or a network such as "169.254.169.254/32"')).default([]),
    })
    .prefault({}),
  /** A cluster job's lease lasts this long unless renewed (renewed at a third of it while the job runs). */
  lease_ttl: duration({ min: 1000, max: MAX_TIMER_MS }).prefault('15s'),
  /** Redis for cluster-scoped jobs' leases; default: ratelimit.redis. Without one, cluster jobs run on every replica. */
  redis: redisConnection.extend({ key_prefix: z.string().default('heimdall:jobs:') }).optional(),
  /** The built-in system check (job `system-check`), which feeds the health score, /status and the strict readiness. */
  system_check: z
    .strictObject({
      enabled: boolean.default(true),
      schedule: z.string().default('*/30 * * * * *'),
      /** Overall score (0-100) under which the agent is degraded (strict readiness off). */
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
      /** File descriptors kept for the agent's own files (queue, embedded engine, exports, Redis, ClickHouse): the listeners' max_connections are lowered at start to fit the open-file limit minus this. */
      fd_reserve: integer({ min: 64, max: 1_000_000 }).default(1024),
      grpc: listener('127.0.0.1:4317')
        .extend({
          max_recv_msg_size: byteSize.prefault('4MiB'),
          ...connectionBounds(1024, 8),
          /** Calls at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
          max_concurrent_streams: integer({ min: 1, max: 100_000 }).default(100),
          /** Long-lived response streams (health Watch, WatchJob) open at once, per service; past it such a call answers RESOURCE_EXHAUSTED. */
          max_streams: integer({ min: 1, max: 1_000_000 }).default(512),
          /** A connection without calls for this long is closed (GOAWAY); one that sends nothing at all for this long (not even keepalive acks) is dropped. */
          idle_timeout: duration({ min: 1000, max: MAX_TIMER_MS }).prefault('5m'),
          /** The server pings every connection this often; a peer that does not answer within keepalive_timeout is dropped. */
          keepalive_time: duration({ min: 100, max: MAX_TIMER_MS }).prefault('1m'),
          keepalive_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('20s'),
          /** A request message must arrive whole within this of the call asking for it (for a request stream: each message); past it the call ends with DEADLINE_EXCEEDED. */
          message_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('30s'),
        })
        .prefault({}),
      otlp_http: listener('127.0.0.1:4318')
        .extend({
          ...connectionBounds(1024, 8),
          ...httpTimeouts('60s'),
          max_body_size: byteSize.prefault('4MiB'),
          /** Origins allowed to send OTLP/HTTP from browsers; empty disables CORS. A bare "*" is refused. */
          cors_allowed_origins: z.array(z.string().refine((o) => o !== '*', 'a bare "*" is not allowed; list the origins')).default([]),
        })
        .prefault({}),
      /** Envoy's RLS API (ShouldRateLimit, scope `ratelimit`) from the rate-limit worker thread, on envoyproxy/ratelimit's gRPC port. 4317 answers it too. */
      ratelimit: listener('127.0.0.1:8081')
        .extend({
          /** Whether the worker listens; off, it still answers 4317 and /ratelimit/json. */
          enabled: boolean.default(true),
          max_recv_msg_size: byteSize.prefault('1MiB'),
          ...connectionBounds(1024, 8),
          /** Calls at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
          max_concurrent_streams: integer({ min: 1, max: 100_000 }).default(100),
          /** A connection that starts no call and has none in flight for this long is closed (keepalive acks do not keep it open). */
          idle_timeout: duration({ min: 1000, max: MAX_TIMER_MS }).prefault('5m'),
          keepalive_time: duration({ min: 100, max: MAX_TIMER_MS }).prefault('1m'),
          keepalive_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('20s'),
          /** Checks 4317 and /ratelimit/json hand the worker at once; past it they answer RESOURCE_EXHAUSTED. */
          max_forwarded: integer({ min: 1, max: 1_000_000 }).default(4096),
          /** Niceness the agent's main thread takes once the worker thread exists (Linux: that thread and the threads it starts later, the embedded engine's among them): on a busy core, ingest and storage work yield to rate-limit checks, while probes keep their share (README: bench:ratelimit). 0 leaves it. */
          main_thread_nice: integer({ min: 0, max: 19 }).default(10),
        })
        .prefault({}),
      /** Probes, /metrics and /status. Loopback by default; on a pod IP (for probes and Prometheus) it needs auth on. */
      admin: listener('127.0.0.1:9464')
        .extend({ ...connectionBounds(128, 16), ...httpTimeouts('30s') })
        .prefault({}),
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
      /** Bytes the local buckets may take, keys included; past it the least recently used go (and come back full). */
      cache_size: byteSizeAtLeast(64 * 1024).prefault('64MiB'),
      /** Descriptor entry keys longer than this (characters) are refused with INVALID_ARGUMENT naming the entry. */
      max_key_length: integer({ min: 1, max: 65_536 }).default(256),
      /** Bucket keys (domain, entries, limit) longer than this (bytes) are kept, locally and in Redis, as the domain and a digest. */
      max_bucket_key_length: integer({ min: 64, max: 65_536 }).default(512),
      /** Refusals are written as one event per domain, limit and entity per this window. */
      over_limit_window: duration({ min: 1000, max: MAX_TIMER_MS }).prefault('1m'),
      /** Domain, limit and entity keys counted per window; past it refusals count under one __overflow__ key. */
      over_limit_max_keys: integer({ min: 1, max: 1_000_000 }).default(10_000),
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
          /** What acts by itself: honeypots, elevation and block rules, their webhooks. */
          automation: automationSchema.prefault({}),
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
      /** Events in one WriteEvents request or StreamEvents message; past it INVALID_ARGUMENT before anything is stored (a reply lists one id per event). */
      max_batch: integer({ min: 1, max: 1_000_000 }).default(10_000),
    })
    .prefault({}),
  /** Budgets of QueryService calls: every storage query's time and reads, windows, and fair slots between tenants. */
  query: z
    .strictObject({
      /** Longest one storage query runs (ClickHouse max_execution_time); past it the call ends with DEADLINE_EXCEEDED. */
      timeout: duration({ min: 1, max: 3_600_000 }).prefault('10s'),
      /** Rows one storage query may read (max_rows_to_read); past it RESOURCE_EXHAUSTED. */
      max_rows_to_read: integer({ min: 1 }).default(100_000_000),
      /** Bytes one storage query may read, uncompressed (max_bytes_to_read); past it RESOURCE_EXHAUSTED. */
      max_bytes_to_read: byteSize.prefault('10GiB'),
      /** Memory one storage query may use (ClickHouse max_memory_usage; in the agent's own process on the embedded engine); past it RESOURCE_EXHAUSTED. */
      max_memory: byteSizeAtLeast(1024 * 1024).prefault('64MiB'),
      /** Window of ListEvents and ListLogs without start_time (ending at end_time, else now). */
      default_window: duration({ min: 1 }).prefault('1h'),
      /** Window of GetSummary without start_time. */
      summary_window: duration({ min: 1 }).prefault('24h'),
      /** Widest window a call may ask for; wider ones are refused with INVALID_ARGUMENT. */
      max_window: duration({ min: 1 }).prefault('31d'),
      /** Storage queries of QueryService running at once, all tenants together. */
      max_concurrent: integer({ min: 1, max: 1000 }).default(4),
      /** Storage queries of one tenant running at once; the others wait their turn (round robin between tenants). */
      max_concurrent_per_tenant: integer({ min: 1, max: 1000 }).default(2),
      /** Storage queries of one tenant waiting for a slot; past it RESOURCE_EXHAUSTED. */
      max_queued_per_tenant: integer({ min: 0, max: 100_000 }).default(64),
      /** Storage queries waiting for a slot, all tenants and tokens together; past it RESOURCE_EXHAUSTED. */
      max_queued: integer({ min: 0, max: 1_000_000 }).default(256),
      /** Longest a storage query waits for a slot; past it RESOURCE_EXHAUSTED. */
      queue_timeout: duration({ min: 1, max: MAX_TIMER_MS }).prefault('30s'),
    })
    .prefault({}),
  telemetry: z
    .strictObject({
      tracing: z
        .strictObject({
          enabled: boolean.default(false),
          /** OTLP/gRPC endpoint for the agent's own spans. */
          endpoint: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as "http://collector:4317"' }).default('http://127.0.0.1:4317'),
          sample_ratio: decimal({ min: 0, max: 1 }).default(1),
        })
        .prefault({}),
      /** Bounds on /metrics: label values that come from clients (span names, descriptor values, domains), its size, its scrapes. */
      metrics: z
        .strictObject({
          /** Longest label value kept, in bytes of /metrics text (UTF-8, escaped); a longer one is cut, ending with "…". */
          max_label_length: integer({ min: 16, max: 4096 }).default(128),
          /** Label sets from clients per client-labelled family (rate-limit descriptors, security refusals; RED metrics: ingest.red_metrics.max_series); the rest count as __overflow__. */
          max_series: integer({ min: 1, max: 1_000_000 }).default(1_000),
          /** Bytes of /metrics text the client label sets of one family may take; past it new ones count as __overflow__. Each family has its own. */
          max_family_size: byteSize.prefault('24MiB'),
          /** /metrics responses in progress at once; past it 503 with Retry-After. One at a time per client address. */
          max_scrapes: integer({ min: 1, max: 64 }).default(4),
          /** A /metrics response not sent within this is cut (its connection closed). */
          scrape_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('10s'),
          /** A /metrics response whose client has taken nothing of it for this long is cut, freeing its slot. */
          stall_timeout: duration({ min: 100, max: MAX_TIMER_MS }).prefault('5s'),
          /** Token scope /metrics needs (with auth on); none: open, as Prometheus scrapes without a token by default. */
          scope: z.enum(['none', ...SCOPES]).default('none'),
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
  for (const l of ['grpc', 'otlp_http', 'admin', 'ratelimit'] as const) {
    const s = c.server[l];
    if (s.reserved_connections >= s.max_connections) ctx.addIssue({ code: 'custom', path: ['server', l, 'reserved_connections'], message: `must be less than server.${l}.max_connections (${s.max_connections})` });
  }
  for (const l of ['otlp_http', 'admin'] as const) {
    if (c.server[l].headers_timeout > c.server[l].request_timeout) ctx.addIssue({ code: 'custom', path: ['server', l, 'headers_timeout'], message: `must not exceed server.${l}.request_timeout (${c.server[l].request_timeout} ms)` });
  }
  if (c.server.grpc.keepalive_time >= c.server.grpc.idle_timeout) {
    // Keepalive acks are what shows a quiet connection (a Watch with nothing new) is alive.
    ctx.addIssue({ code: 'custom', path: ['server', 'grpc', 'keepalive_time'], message: `must be shorter than server.grpc.idle_timeout (${c.server.grpc.idle_timeout} ms)` });
  }
  if (c.ingest.memory.spike >= c.ingest.memory.limit) {
    ctx.addIssue({ code: 'custom', path: ['ingest', 'memory', 'spike'], message: `must be smaller than ingest.memory.limit (${formatBytes(c.ingest.memory.limit)})` });
  }
  if (!c.auth.enabled) {
    // An address that is not host:port has its own issue; it is no exposed listener.
    const exposed = (['grpc', 'otlp_http', 'admin', 'ratelimit'] as const).filter((l) => l !== 'ratelimit' || c.server.ratelimit.enabled).filter((l) => splitHostPort(c.server[l].address) !== undefined && !isLoopback(c.server[l].address));
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
  if (c.query.default_window > c.query.max_window || c.query.summary_window > c.query.max_window) {
    ctx.addIssue({ code: 'custom', path: ['query', c.query.default_window > c.query.max_window ? 'default_window' : 'summary_window'], message: `must not exceed query.max_window (${c.query.max_window} ms)` });
  }
  for (const [i, j] of c.jobs.scheduled.entries()) {
    // An export reads at most query.max_window; one that always asks for more would fail every run.
    const p = j.kind === 'export' ? KIND_PARAMS.export.safeParse(j.params) : undefined;
    if (p?.success && !p.data.start && p.data.since > c.query.max_window) {
      ctx.addIssue({ code: 'custom', path: ['jobs', 'scheduled', i, 'params', 'since'], message: `must not exceed query.max_window (${c.query.max_window} ms)` });
    }
  }
  if (c.query.max_concurrent_per_tenant > c.query.max_concurrent) {
    ctx.addIssue({ code: 'custom', path: ['query', 'max_concurrent_per_tenant'], message: `must not exceed query.max_concurrent (${c.query.max_concurrent})` });
  }
  if (c.telemetry.metrics.scope !== 'none' && !c.auth.enabled) {
    ctx.addIssue({ code: 'custom', path: ['telemetry', 'metrics', 'scope'], message: `needs auth.enabled: true (without tokens no scrape could have scope ${c.telemetry.metrics.scope})` });
  }
  if (c.storage.retry.initial_interval > c.storage.retry.max_interval) {
    ctx.addIssue({ code: 'custom', path: ['storage', 'retry', 'initial_interval'], message: 'must not exceed storage.retry.max_interval' });
  }
});

/** The validated configuration, with defaults filled in and durations/sizes in ms/bytes. */
export type Config = z.output<typeof configSchema>;
