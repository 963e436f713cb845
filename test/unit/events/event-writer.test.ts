/** The event writer over a real pipeline on embedded storage: validation, request defaults, refusals and their counters, memory given back. */
import { create, toBinary } from '@bufbuild/protobuf';
import { Metadata } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { createEventWriter, type EventWriter } from '../../../src/events/event-writer.js';
import { EventSchema, Severity, WriteEventsRequestSchema, type Event } from '../../../src/gen/heimdall/v1/events_pb.js';
import { RequestTooLarge, RetryableError } from '../../../src/ingest/pipeline/errors.js';
import type { CallContext } from '../../../src/server/grpc-service.js';
import type { Storage } from '../../../src/storage/storage.js';
import { createTestStorage } from '../../support/embedded-storage.js';
import { useTestPipelines, type TestPipeline } from '../../support/pipeline.js';

const pipelines = useTestPipelines();

/** A writer (events.max_batch 3, at most `maxElements` values a message) over a started pipeline with `ingest` overrides, on the file's storage unless given one. */
async function writerWith(options: { ingest?: Record<string, unknown>; maxElements?: number; storage?: Storage } = {}): Promise<{ writer: EventWriter; metrics: Registry; p: TestPipeline }> {
  const t = await pipelines.start(options.ingest, options.storage);
  const metrics = new Registry();
  const writer = createEventWriter({ pipeline: t.pipeline, config: validateConfig({ events: { max_batch: 3 } }).events, maxElements: options.maxElements ?? 1_000_000, metrics });
  return { writer, metrics, p: t };
}

/** The call of a tenant-bound token, with a traceparent; `released` lists the messages handed back to it. */
function callContext(): CallContext & { released: Buffer[] } {
  const metadata = new Metadata();
  metadata.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  const released: Buffer[] = [];
  return {
    correlationId: 'corr-1',
    metadata,
    signal: new AbortController().signal,
    method: '/heimdall.v1.EventService/WriteEvents',
    requestBytes: 0,
    principal: { name: 'writer', scopes: new Set(['ingest']), tenant: 'acme' },
    releaseMessage: (m) => void released.push(m),
    released,
  };
}

/** The fields a test sets on an event. */
interface EventFields {
  id?: string;
  source?: string;
  severity?: Severity;
  correlationId?: string;
  resourceAttributes?: Record<string, string>;
}
const event = (eventType: string, more: EventFields = {}): Event => create(EventSchema, { eventType, source: 'billing', severity: Severity.INFO, message: 'paid', ...more });
const message = (events: Event[]) => Buffer.from(toBinary(WriteEventsRequestSchema, create(WriteEventsRequestSchema, { events })));
const counter = async (metrics: Registry, name: string) => (await metrics.getSingleMetric(name)?.get())?.values[0]?.value ?? 0;
const rowsOf = (eventType: string) =>
  pipelines.store.rows<{ Id: string; TenantId: string; CorrelationId: string; TraceId: string; SpanId: string }>('SELECT Id, TenantId, CorrelationId, TraceId, SpanId FROM heimdall_events WHERE EventType = {t:String} ORDER BY Id', { t: eventType });

describe('event writer', () => {
  it('stores the valid events of a message with the request defaults, numbering errors from the stream offset', async () => {
    const { writer, metrics, p } = await writerWith();
    const ctx = callContext();
    const bytes = message([event('writer.stored', { id: 'ev-a' }), event('writer.stored', { severity: Severity.UNSPECIFIED }), event('writer.stored', { id: 'ev-b', correlationId: 'own' })]);
    const result = await writer.write(bytes, 3, 10, ctx, 'message 2');
    expect(result).toEqual({ accepted: 2, rejected: 1, errors: [{ index: 11, field: 'events[11].severity', message: 'is required (debug, info, notice, warning, error or critical)' }], ids: ['ev-a', 'ev-b'] });
    // Resolved once stored: the rows are there.
    expect(await rowsOf('writer.stored')).toEqual([
      { Id: 'ev-a', TenantId: 'acme', CorrelationId: 'corr-1', TraceId: '4bf92f3577b34da6a3ce929d0e0e4736', SpanId: '00f067aa0ba902b7' },
      { Id: 'ev-b', TenantId: 'acme', CorrelationId: 'own', TraceId: '4bf92f3577b34da6a3ce929d0e0e4736', SpanId: '00f067aa0ba902b7' },
    ]);
    expect([await counter(metrics, 'heimdall_events_accepted_total'), await counter(metrics, 'heimdall_events_rejected_total')]).toEqual([2, 1]);
    // The read reservation was handed over, and the message's own admission given back.
    expect(ctx.released).toEqual([bytes]);
    expect(p.pipeline.load().memoryBytes).toBe(0);
  }, 60_000);

  it('answers a message of only invalid events with its errors and stores nothing', async () => {
    const { writer, metrics } = await writerWith();
    const result = await writer.write(message([event('writer.invalid', { source: '' })]), 1, 0, callContext(), 'the request');
    expect(result).toEqual({ accepted: 0, rejected: 1, errors: [{ index: 0, field: 'events[0].source', message: 'is required' }], ids: [] });
    expect(await rowsOf('writer.invalid')).toEqual([]);
    expect([await counter(metrics, 'heimdall_events_accepted_total'), await counter(metrics, 'heimdall_events_rejected_total')]).toEqual([0, 1]);
  }, 60_000);

  it('refuses more events than events.max_batch before admitting anything, naming the message', async () => {
    const { writer, metrics, p } = await writerWith();
    const ctx = callContext();
    const err = await writer.write(message([]), 4, 0, ctx, 'message 7').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({
      code: 'invalid_argument',
      violations: [{ field: 'events', description: 'message 7 holds 4 events, more than events.max_batch (3) allows; send them in smaller batches' }],
    });
    expect(await counter(metrics, 'heimdall_events_too_large_total')).toBe(1);
    expect(ctx.released).toEqual([]);
    expect(p.pipeline.load().memoryBytes).toBe(0);
  }, 60_000);

  it('refuses for good a message of more values than it may decode into, and gives its memory back', async () => {
    const { writer, metrics, p } = await writerWith({ maxElements: 10 });
    const events = Array.from({ length: 3 }, (_, i) => event('writer.elements', { resourceAttributes: { a: `${i}`, b: 'x', c: 'y', d: 'z' } }));
    await expect(writer.write(message(events), 3, 0, callContext(), 'the request')).rejects.toThrow(RequestTooLarge);
    expect(await counter(metrics, 'heimdall_events_too_large_total')).toBe(1);
    expect(p.pipeline.load().memoryBytes).toBe(0);
    expect(await rowsOf('writer.elements')).toEqual([]);
  }, 60_000);

  it('answers malformed bytes INVALID_ARGUMENT naming the message type', async () => {
    const { writer, p } = await writerWith();
    // Field 1 (events), length-delimited, claiming 5 bytes where there are 2.
    const err = await writer.write(Buffer.from([0x0a, 0x05, 0x01, 0x02]), 1, 0, callContext(), 'the request').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('invalid_argument');
    expect((err as AgentError).message).toMatch(/^malformed heimdall\.v1\.WriteEventsRequest: /);
    expect(p.pipeline.load().memoryBytes).toBe(0);
  }, 60_000);

  it('counts the events of a message storage did not take as refused, not accepted, and throws the RetryableError', async () => {
    // Storage never started refuses every insert; the pipeline gives up on the batch after 100 ms.
    const down = createTestStorage();
    try {
      const { writer, metrics, p } = await writerWith({ storage: down.storage, ingest: { retry: { initial_interval: '10ms', max_interval: '20ms', max_elapsed: '100ms' } } });
      await expect(writer.write(message([event('writer.refused'), event('writer.refused')]), 2, 0, callContext(), 'the request')).rejects.toThrow(RetryableError);
      expect([await counter(metrics, 'heimdall_events_refused_total'), await counter(metrics, 'heimdall_events_accepted_total')]).toEqual([2, 0]);
      expect(p.pipeline.load().memoryBytes).toBe(0);
    } finally {
      await down.stop();
    }
  }, 60_000);

  it('refuses every message while the pipeline stops, whatever it holds', async () => {
    const { writer, p } = await writerWith();
    await p.pipeline.shutdown();
    await expect(writer.write(message([event('writer.stopping', { source: '' })]), 1, 0, callContext(), 'the request')).rejects.toThrow(RetryableError);
  }, 60_000);
});
