/** The pipeline's one entry, `consume`, over a real pipeline on embedded storage: processing, admission and what gets stored. */
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { submitAgentEvents, type AgentEvent, type AgentEventSink } from '../../../src/events/events.js';
import { Severity } from '../../../src/gen/heimdall/v1/events_pb.js';
import { KeyValueSchema } from '../../../src/gen/opentelemetry/proto/common/v1/common_pb.js';
import { tracesToRows } from '../../../src/ingest/otlp/traces.js';
import { RequestTooLarge, RetryableError } from '../../../src/ingest/pipeline/errors.js';
import { useTestPipelines, type TestPipeline } from '../../support/pipeline.js';
import { traceRequest } from '../../support/otlp-requests.js';

const MiB = 1024 * 1024;
/** A pipeline whose soft memory limit is 3 MiB: an admission of 3.5 MiB fills it. */
const SMALL_MEMORY = { memory: { limit: '4MiB', spike: '1MiB' } };

const pipelines = useTestPipelines();
const pipelineWith = (ingest: Record<string, unknown> = {}): Promise<TestPipeline> => pipelines.start(ingest);

/** An agent event marked by `eventType` (its message quotes a bearer token, its payload a URL password and a password). */
const agentEvent = (eventType: string): AgentEvent => ({
  eventType,
  severity: Severity.WARNING,
  category: 'test',
  message: 'called https://hooks.example with Authorization: Bearer eyAbc.def-ghi',
  actorId: 'test',
  payload: { url: 'postgres://app:s3cr3t@db:5432/x', password: 'hunter2', attempts: 3 },
});

/** A sink that hands events to `consume` and keeps the promise of their storing, for the test to await. */
function keptSink(p: TestPipeline): AgentEventSink & { stored: Promise<void> | undefined } {
  const sink: AgentEventSink & { stored: Promise<void> | undefined } = {
    stored: undefined,
    consume: (batch, admission) => (sink.stored = p.pipeline.consume(batch, admission)),
  };
  return sink;
}

const eventRows = (eventType: string) => pipelines.store.rows<{ Message: string; Payload: string; Source: string }>('SELECT Message, Payload, Source FROM heimdall_events WHERE EventType = {t:String}', { t: eventType });

describe('pipeline.consume: conversions', () => {
  it('stores a conversion enriched and redacted, processing it before it returns', async () => {
    vi.stubEnv('HEIMDALL_TEST_NODE', 'node-7');
    const p = await pipelineWith({ enrichment: { from_env: { HEIMDALL_TEST_NODE: 'k8s.node.name' } } });
    const request = traceRequest('consume-conversion', 3);
    request.resourceSpans[0]?.scopeSpans[0]?.spans[0]?.attributes.push(create(KeyValueSchema, { key: 'db.password', value: { value: { case: 'stringValue', value: 'hunter2' } } }));
    const conversion = tracesToRows(request);
    const stored = p.pipeline.consume({ conversion });
    // Processed synchronously: the rows read now are the rows stored.
    const first = conversion.tables.get('otel_traces')?.[0];
    expect(first?.ResourceAttributes).toMatchObject({ 'k8s.node.name': 'node-7', 'service.name': 'consume-conversion' });
    await stored;
    const rows = await pipelines.store.rows<{ node: string; pw: string }>(
      "SELECT ResourceAttributes['k8s.node.name'] AS node, SpanAttributes['db.password'] AS pw FROM otel_traces WHERE ServiceName = 'consume-conversion' ORDER BY pw DESC",
    );
    expect(rows).toHaveLength(3);
    expect(rows.map((r) => r.node)).toEqual(['node-7', 'node-7', 'node-7']);
    expect(rows[0]?.pw).toBe('[REDACTED]');
  }, 60_000);

  it('counts the rows of an admitted request on top of its admission and never refuses them, even with the limiter full', async () => {
    const p = await pipelineWith(SMALL_MEMORY);
    const admission = p.pipeline.admit(3.5 * MiB, 1);
    try {
      // Another request does not fit now: the limiter is full.
      expect(() => p.pipeline.admit(64 * 1024, 1)).toThrow(RetryableError);
      const stored = p.pipeline.consume({ conversion: tracesToRows(traceRequest('consume-admitted', 5)) }, admission);
      expect(p.pipeline.load().memoryBytes).toBeGreaterThan(3.5 * MiB);
      await stored;
      expect(p.pipeline.load().memoryBytes).toBe(3.5 * MiB);
    } finally {
      admission.release();
    }
    expect(p.pipeline.load().memoryBytes).toBe(0);
    expect(await pipelines.store.rows("SELECT 1 FROM otel_traces WHERE ServiceName = 'consume-admitted'")).toHaveLength(5);
  }, 60_000);

  it('refuses for good rows that alone pass the memory limit when no admission holds them', async () => {
    const p = await pipelineWith(SMALL_MEMORY);
    const big = { table: 'heimdall_events', data: Buffer.alloc(5 * MiB, 0x20), rows: 1 };
    await expect(p.pipeline.consume({ encode: () => [big] })).rejects.toThrow(RequestTooLarge);
    expect(p.pipeline.load().memoryBytes).toBe(0);
  }, 60_000);
});

describe('pipeline.consume: the agent own events', () => {
  it('stores agent events redacted: message and payload', async () => {
    const p = await pipelineWith();
    const sink = keptSink(p);
    submitAgentEvents(sink, [agentEvent('test.consume.redacted')], pino({ level: 'silent' }));
    await sink.stored;
    const rows = await eventRows('test.consume.redacted');
    expect(rows).toHaveLength(1);
    expect(rows[0]?.Source).toBe('heimdall');
    expect(rows[0]?.Message).toBe('called https://hooks.example with Authorization: Bearer [REDACTED]');
    expect(JSON.parse(rows[0]?.Payload ?? '')).toEqual({ url: 'postgres://app:[REDACTED]@db:5432/x', password: '[REDACTED]', attempts: 3 });
  }, 60_000);

  it('refuses an unadmitted batch of agent events while the limiter is full (RetryableError, logged) and stores nothing', async () => {
    const p = await pipelineWith(SMALL_MEMORY);
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const sink = keptSink(p);
    const admission = p.pipeline.admit(3.5 * MiB, 1);
    try {
      submitAgentEvents(sink, [agentEvent('test.consume.refused')], logger);
      await expect(sink.stored).rejects.toThrow(RetryableError);
      expect(p.pipeline.load().memoryBytes).toBe(3.5 * MiB);
    } finally {
      admission.release();
    }
    await vi.waitFor(() => expect(lines).toEqual([expect.objectContaining({ msg: 'agent events not stored', rows: 1, err: expect.objectContaining({ type: 'RetryableError' }) as unknown })]));
    expect(await eventRows('test.consume.refused')).toEqual([]);
    // Once there is room again, the same events are taken.
    submitAgentEvents(sink, [agentEvent('test.consume.refused')], logger);
    await sink.stored;
    expect(await eventRows('test.consume.refused')).toHaveLength(1);
  }, 60_000);

  it('stores nothing when the encoder declines: all events invalid, or an encoder that returns undefined', async () => {
    const p = await pipelineWith();
    const sink = keptSink(p);
    // An event without a severity is invalid: no rows, so the encoder declines.
    submitAgentEvents(sink, [{ ...agentEvent('test.consume.declined'), severity: Severity.UNSPECIFIED }], pino({ level: 'silent' }));
    await sink.stored;
    await p.pipeline.consume({ encode: () => undefined });
    expect(await eventRows('test.consume.declined')).toEqual([]);
    // No batch was ever handed to the writer.
    expect(await p.metrics.getSingleMetricAsString('heimdall_batch_rows')).not.toContain('heimdall_batch_rows_count');
    expect(p.pipeline.load().memoryBytes).toBe(0);
  }, 60_000);

  it('hands the encoder the pipeline processors', async () => {
    vi.stubEnv('HEIMDALL_TEST_NODE', 'node-9');
    const p = await pipelineWith({ enrichment: { from_env: { HEIMDALL_TEST_NODE: 'k8s.node.name' } }, redaction: { replacement: '***' } });
    const seen: unknown[] = [];
    await p.pipeline.consume({ encode: (processors) => (seen.push(processors.resourceDefaults, processors.redaction?.redactFreeText('Authorization: Bearer eyAbc.def-ghi')), undefined) });
    expect(seen).toEqual([{ 'k8s.node.name': 'node-9' }, 'Authorization: Bearer ***']);
  }, 60_000);
});
