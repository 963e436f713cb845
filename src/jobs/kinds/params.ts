import { z } from '../../config/zod.js';
import { boolean, decimal, duration, integer } from '../../config/units.js';
import { RETENTION_TABLES } from '../../storage/migrations/index.js';

const isoTime = z.iso.datetime({ offset: true, error: 'expected an RFC 3339 time such as "2026-01-31T12:00:00Z"' });

/** Parameters of each task kind, validated when a job is created (and again when it runs). */
export const KIND_PARAMS = {
  /** Storage, Redis, durable queue and disk; a score under `threshold` turns the strict readiness off (never the pod readiness). */
  'system-check': z
    .strictObject({
      /** Overall score (0-100) under which the agent is degraded (strict readiness off). */
      threshold: integer({ min: 0, max: 100 }).default(50),
      /**
       * Scopes whose scores make the overall one (the lowest of them). Redis is scored but left out
       * by default: without it rate limits answer per their failure_mode and cluster jobs wait, and
       * a Redis outage must not take every pod out of its Service.
       */
      critical: z.array(z.enum(['storage', 'redis', 'queue', 'disk'])).min(1).default(['storage', 'queue', 'disk']),
      /** Disk space free (percent) at and above which the disk scores 100. */
      disk_ok_percent: decimal({ min: 0, max: 100 }).default(20),
      /** Disk space free (percent) at and under which the disk scores 0. */
      disk_min_percent: decimal({ min: 0, max: 100 }).default(5),
    })
    .refine((p) => p.disk_ok_percent > p.disk_min_percent, { path: ['disk_ok_percent'], message: 'must be greater than disk_min_percent' }),
  /** A synthetic HTTP probe. */
  'http-check': z.strictObject({
    url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
    method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'OPTIONS']).default('GET'),
    /** Statuses that pass; any 2xx when empty. */
    expected_status: z.union([integer({ min: 100, max: 599 }).transform((s) => [s]), z.array(integer({ min: 100, max: 599 }))]).default([]),
    timeout: duration({ min: 1, max: 300_000 }).prefault('5s'),
    /** Slower answers pass but are reported as slow (warning event). */
    latency_threshold: duration({ min: 1, max: 300_000 }).prefault('1s'),
    headers: z.record(z.string(), z.string()).default({}),
    body: z.string().max(65_536).optional(),
  }),
  /** Drops partitions past retention and materialises TTL on the rest. */
  retention: z.strictObject({
    /** Report what would be removed, remove nothing. */
    dry_run: boolean.default(false),
    /** Only these tables; every table with a retention when absent. */
    tables: z.array(z.enum(RETENTION_TABLES.map((t) => t.table) as [string, ...string[]])).optional(),
  }),
  /** Writes the rows of a query over stored data to a file in the export directory. */
  export: z
    .strictObject({
      source: z.enum(['events', 'logs', 'spans']),
      format: z.enum(['jsonl', 'csv']).default('jsonl'),
      /** File name in the export directory; `<run id>.<format>` when absent. */
      file: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'expected a plain file name (letters, digits, ".", "_", "-"), no directories').optional(),
      /** Rows from this long ago until end; ignored when start is given. */
      since: duration({ min: 1 }).prefault('24h'),
      start: isoTime.optional(),
      end: isoTime.optional(),
      /** events: event_type, source, min_severity (1-6); logs: service_name, min_severity (1-24); spans: service_name. */
      filters: z
        .strictObject({
          service_name: z.string().optional(),
          event_type: z.string().optional(),
          source: z.string().optional(),
          min_severity: integer({ min: 1, max: 24 }).optional(),
        })
        .default({}),
      /** Rows read and written per chunk (progress is reported after each). */
      chunk_rows: integer({ min: 100, max: 1_000_000 }).default(20_000),
      /**
       * Only this tenant's rows (events: tenant_id; logs and spans: resource attribute tenant.id).
       * Set from the token when a tenant-bound token submits the job.
       */
      tenant: z.string().min(1).optional(),
    })
    .superRefine((p, ctx) => {
      const allowed = { events: ['event_type', 'source', 'min_severity'], logs: ['service_name', 'min_severity'], spans: ['service_name'] }[p.source];
      for (const k of Object.keys(p.filters)) {
        if (!allowed.includes(k)) ctx.addIssue({ code: 'custom', path: ['filters', k], message: `does not apply to source ${p.source} (use ${allowed.join(', ')})` });
      }
      if (p.start && p.end && Date.parse(p.start) >= Date.parse(p.end)) ctx.addIssue({ code: 'custom', path: ['end'], message: 'must be after start' });
    }),
} as const;

/** The task kinds, in the order they are documented. */
export const KIND_NAMES = Object.keys(KIND_PARAMS) as Array<keyof typeof KIND_PARAMS>;
/** A task kind's name. */
export type KindName = keyof typeof KIND_PARAMS;
/** The parsed parameters of a kind. */
export type KindParams<K extends KindName> = z.output<(typeof KIND_PARAMS)[K]>;
