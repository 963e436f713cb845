// Fills a data directory with COUNT events spread over the last 24 hours (10 tenants, 50 sources,
// 6 severities, 5 events per correlation and trace id), generated inside the embedded engine.
import { createEmbeddedTransport } from '../dist/storage/embedded.js';
import { migrate, schemaContext } from '../dist/storage/migrate.js';

const [, , path, countText] = process.argv;
const count = Number(countText);
const DAY = 86_400_000;
const t = await createEmbeddedTransport({ path });
const quiet = { info() {}, warn() {}, error() {}, debug() {} };
await migrate(t, schemaContext({ retention: { traces: 90 * DAY, logs: 90 * DAY, metrics: 90 * DAY, events: 90 * DAY } }), quiet);
const step = Math.floor((DAY * 1e6) / count); // nanoseconds between events
const chunk = 1_000_000;
for (let from = 0; from < count; from += chunk) {
  await t.command(
    `INSERT INTO heimdall_events SELECT
      now64(9) - toIntervalNanosecond(number * {step:UInt64}) AS Timestamp,
      toString(generateUUIDv7(number)) AS Id,
      concat('tenant-', toString(number % 10)) AS TenantId,
      ['login', 'logout', 'deploy', 'payment', 'alert'][number % 5 + 1] AS EventType,
      concat('svc-', toString(number % 50)) AS Source,
      number % 6 + 1 AS Severity,
      ['auth', 'ops', 'billing'][number % 3 + 1] AS Category,
      concat('event ', toString(number), ' for user ', toString(number % 10007)) AS Message,
      concat('corr-', toString(intDiv(number, 5))) AS CorrelationId,
      lower(hex(MD5(toString(intDiv(number, 5))))) AS TraceId,
      substring(lower(hex(MD5(toString(number)))), 1, 16) AS SpanId,
      concat('user-', toString(number % 10007)) AS ActorId,
      ['ok', 'failed'][number % 2 + 1] AS Status,
      toFloat64(number % 1000) AS DurationMs,
      '{"order":{"items":3,"total":42.5}}' AS Payload,
      map('host.name', concat('host-', toString(number % 20))) AS ResourceAttributes
    FROM numbers({from:UInt64}, {n:UInt64})`,
    { step, from, n: Math.min(chunk, count - from) },
  );
}
await t.command('OPTIMIZE TABLE heimdall_events FINAL');
const [row] = await t.query('SELECT count() AS n FROM heimdall_events');
process.stdout.write(JSON.stringify({ events: Number(row.n) }) + '\n');
await t.close();
