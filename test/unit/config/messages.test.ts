/** Validation messages as a user reads them: whole lines, each quoting the value at fault once. */
import { describe, expect, it } from 'vitest';
import { ConfigError, formatIssue, validateConfig } from '../../../src/config/load.js';
import { taskSchema } from '../../../src/jobs/spec.js';

/** The lines of the ConfigError that validating `tree` throws (without the "invalid configuration:" heading). */
function problems(tree: unknown): string[] {
  try {
    validateConfig(tree);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const [heading, ...lines] = (err as Error).message.split('\n  ');
    expect(heading).toBe('invalid configuration:');
    return lines;
  }
  throw new Error('expected a ConfigError');
}

const job = (fields: Record<string, unknown>) => ({ jobs: { scheduled: [{ name: 'probe', schedule: '*/5 * * * *', kind: 'http-check', params: { url: 'http://app:8080/healthz' }, ...fields }] } });

/** One bad value of every kind of key, with the whole message it gives and the value as quoted. */
const CASES: Array<{ kind: string; tree: unknown; line: string; value: string }> = [
  { kind: 'URL', tree: { storage: { clickhouse: { url: 'foo' } } }, line: 'storage.clickhouse.url: expected a URL such as "http://clickhouse:8123", got "foo"', value: '"foo"' },
  { kind: 'URL', tree: { telemetry: { tracing: { endpoint: 'foo' } } }, line: 'telemetry.tracing.endpoint: expected an http(s) URL such as "http://collector:4317", got "foo"', value: '"foo"' },
  { kind: 'URL', tree: { jobs: { redis: { url: 'foo' } } }, line: 'jobs.redis.url: expected a URL such as "redis://redis:6379", got "foo"', value: '"foo"' },
  { kind: 'duration', tree: { ingest: { batch: { max_delay: 'soon' } } }, line: 'ingest.batch.max_delay: expected a duration such as "500ms", "5s", "1h" or "90d", got "soon"', value: '"soon"' },
  { kind: 'duration', tree: { storage: { health_check_interval: '30d' } }, line: 'storage.health_check_interval: expected a duration from 100ms to 2147483647ms, got "30d"', value: '"30d"' },
  { kind: 'size', tree: { ingest: { queue: { max_size: 'big' } } }, line: 'ingest.queue.max_size: expected a size such as "4MiB" or "512KiB" (a number without a unit counts as bytes), got "big"', value: '"big"' },
  { kind: 'size', tree: { ratelimit: { cache_size: '16KiB' } }, line: 'ratelimit.cache_size: expected at least 64KiB, got "16KiB"', value: '"16KiB"' },
  { kind: 'address', tree: { server: { grpc: { address: 'nonsense' } } }, line: 'server.grpc.address: expected "host:port" (for example "127.0.0.1:4317") with a port from 0 to 65535, got "nonsense"', value: '"nonsense"' },
  { kind: 'enum', tree: { log: { level: 'loud' } }, line: 'log.level: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"', value: '"loud"' },
  { kind: 'integer', tree: { query: { max_concurrent: 'many' } }, line: 'query.max_concurrent: expected a whole number, got "many"', value: '"many"' },
  { kind: 'boolean', tree: { storage: { migrate_on_start: 'yes' } }, line: 'storage.migrate_on_start: expected one of "true", "false", got "yes"', value: '"yes"' },
  { kind: 'cron', tree: { jobs: { system_check: { schedule: 'bad' } } }, line: 'jobs.system_check.schedule: invalid cron expression "bad": 1 field; expected 5, or 6 with seconds first', value: '"bad"' },
  { kind: 'cron', tree: job({ schedule: '61 * * * *' }), line: 'jobs.scheduled[0].schedule: invalid cron expression "61 * * * *": Invalid value for minute: 61', value: '"61 * * * *"' },
  { kind: 'time zone', tree: job({ time_zone: 'Mars/Base' }), line: 'jobs.scheduled[0].time_zone: unknown time zone "Mars/Base"; expected an IANA name such as "UTC" or "Europe/Oslo"', value: '"Mars/Base"' },
  { kind: 'job params URL', tree: job({ params: { url: 'foo' } }), line: 'jobs.scheduled[0].params.url: expected an http(s) URL, got "foo"', value: '"foo"' },
  { kind: 'job params duration', tree: job({ params: { url: 'http://app', timeout: 'x' } }), line: 'jobs.scheduled[0].params.timeout: expected a duration such as "500ms", "5s", "1h" or "90d", got "x"', value: '"x"' },
  { kind: 'job params time', tree: job({ kind: 'export', params: { source: 'events', start: 'yesterday' } }), line: 'jobs.scheduled[0].params.start: expected an RFC 3339 time such as "2026-01-31T12:00:00Z", got "yesterday"', value: '"yesterday"' },
  { kind: 'job params enum', tree: job({ kind: 'export', params: { source: 'events', format: 'xml' } }), line: 'jobs.scheduled[0].params.format: expected one of "jsonl", "csv", got "xml"', value: '"xml"' },
];

describe('configuration messages', () => {
  it.each(CASES)('$kind: the whole line, quoting the value once ($line)', ({ tree, line, value }) => {
    expect(problems(tree)).toEqual([line]);
    expect(line.split(value).length - 1).toBe(1);
    expect(line.split(', got ').length - 1).toBeLessThanOrEqual(1);
  });

  it('job parameters given through the API read the same, under the request field', () => {
    const r = taskSchema.safeParse({ kind: 'http-check', params: { url: 'foo', timeout: 'x' } }, { reportInput: true });
    expect(r.success).toBe(false);
    expect(r.error?.issues.flatMap((i) => formatIssue({ ...i, path: ['job', ...i.path] }))).toEqual([
      'job.params.url: expected an http(s) URL, got "foo"',
      'job.params.timeout: expected a duration such as "500ms", "5s", "1h" or "90d", got "x"',
    ]);
  });

  it('never quotes the value of a secret, nor of a mapping', () => {
    expect(problems({ ratelimit: { redis: { url: 'redis://r:6379', password: 5 } } })).toEqual(['ratelimit.redis.password: expected string']);
    expect(problems({ auth: { enabled: true, tokens: [{ name: 'a', token: 'short', scopes: ['query'] }] } })).toEqual(['auth.tokens[0].token: must be at least 16 characters']);
  });

  it('reports an invalid listen address alone, not also as an address that is not loopback', () => {
    expect(problems({ server: { grpc: { address: 'host:99999' } } })).toEqual(['server.grpc.address: expected "host:port" (for example "127.0.0.1:4317") with a port from 0 to 65535, got "host:99999"']);
    expect(problems({ server: { admin: { address: 'nonsense' }, otlp_http: { address: ':4318' } } })).toEqual([
      'server.otlp_http.address: expected "host:port" (for example "127.0.0.1:4317") with a port from 0 to 65535, got ":4318"',
      'server.admin.address: expected "host:port" (for example "127.0.0.1:4317") with a port from 0 to 65535, got "nonsense"',
    ]);
    // A valid address off loopback still needs auth, and is named.
    expect(problems({ server: { grpc: { address: 'nonsense' }, admin: { address: '0.0.0.0:9464' } } })).toEqual([
      'server.grpc.address: expected "host:port" (for example "127.0.0.1:4317") with a port from 0 to 65535, got "nonsense"',
      'auth.enabled: is false, but server.admin.address (0.0.0.0:9464) is not loopback: either turn auth on (auth.enabled: true with auth.tokens or auth.tokens_file), or bind every listener to loopback (127.0.0.1 or ::1)',
    ]);
    // The rate-limit worker's listener too, unless it is off.
    expect(problems({ server: { ratelimit: { address: '0.0.0.0:8081' } } })).toEqual([
      'auth.enabled: is false, but server.ratelimit.address (0.0.0.0:8081) is not loopback: either turn auth on (auth.enabled: true with auth.tokens or auth.tokens_file), or bind every listener to loopback (127.0.0.1 or ::1)',
    ]);
    expect(validateConfig({ server: { ratelimit: { address: '0.0.0.0:8081', enabled: false } } }).server.ratelimit.enabled).toBe(false);
    expect(problems({ server: { ratelimit: { max_connections: 8, reserved_connections: 8 } } })).toEqual(['server.ratelimit.reserved_connections: must be less than server.ratelimit.max_connections (8)']);
  });
});

describe('size settings', () => {
  it('refuse a number without a unit that would be too few bytes, saying it counts as bytes, on the key given', () => {
    const bare = 'expected at least 1KiB (a number without a unit counts as bytes; write a unit, as in "64MiB")';
    expect(problems({ ingest: { memory: { limit: 512 } } })).toEqual([`ingest.memory.limit: ${bare}, got 512`]);
    // Environment substitution gives text: the same.
    expect(problems({ ingest: { memory: { limit: '512' } } })).toEqual([`ingest.memory.limit: ${bare}, got "512"`]);
    expect(problems({ events: { max_payload: 64 } })).toEqual([`events.max_payload: ${bare}, got 64`]);
    expect(problems({ query: { max_memory: 64 } })).toEqual(['query.max_memory: expected at least 1MiB (a number without a unit counts as bytes; write a unit, as in "64MiB"), got 64']);
    // With a unit there is nothing to explain.
    expect(problems({ ingest: { memory: { limit: '512B' } } })).toEqual(['ingest.memory.limit: expected at least 1KiB, got "512B"']);
  });

  it('take a number without a unit as bytes, as check-config prints them, and say the size understood when it clashes with another', () => {
    const c = validateConfig({ ingest: { memory: { limit: 268_435_456, spike: '67108864' }, queue: { max_size: 1_073_741_824 } }, events: { max_payload: 1024 } });
    expect([c.ingest.memory.limit, c.ingest.memory.spike, c.ingest.queue.max_size, c.events.max_payload]).toEqual([256 * 1024 ** 2, 64 * 1024 ** 2, 1024 ** 3, 1024]);
    expect(problems({ ingest: { memory: { limit: 4096 } } })).toEqual(['ingest.memory.spike: must be smaller than ingest.memory.limit (4KiB)']);
  });

  it('refuse what is not a size, whatever the key', () => {
    const line = (key: string, got: string) => `${key}: expected a size such as "4MiB" or "512KiB" (a number without a unit counts as bytes), got ${got}`;
    expect(problems({ storage: { embedded: { max_size: -5 } } })).toEqual([line('storage.embedded.max_size', '-5')]);
    expect(problems({ server: { otlp_http: { max_body_size: 1.5 } } })).toEqual([line('server.otlp_http.max_body_size', '1.5')]);
    expect(problems({ jobs: { export_max_size: '4 MiBs' } })).toEqual([line('jobs.export_max_size', '"4 MiBs"')]);
  });
});
