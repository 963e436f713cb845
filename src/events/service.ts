import { status } from '@grpc/grpc-js';
import { Counter, type Registry } from 'prom-client';
import { EventService, type Event } from '../gen/heimdall/v1/events_pb.js';
import { RequestTooLarge, RetryableError } from '../ingest/pipeline/errors.js';
import type { Admission, Pipeline } from '../ingest/pipeline/pipeline.js';
import { GrpcError, invalidArgument, unavailable } from '../server/errors.js';
import type { GrpcServer } from '../server/grpc.js';
import type { CallContext } from '../server/grpc-service.js';
import { eventToRow, EVENTS_TABLE, parseTraceparent, type EventRules, type FieldError } from './events.js';

/** Options for addEventService. */
export interface EventServiceOptions {
  grpc: GrpcServer;
  /** Where event rows go: the same batcher, writer, acknowledgement and durable queue as OTLP. */
  pipeline: Pipeline;
  /** Largest payload of one event, as JSON. */
  maxPayloadBytes: number;
  metrics: Registry;
}

/** Errors reported in one response, at most. */
const MAX_ERRORS = 100;
/** Batches of one StreamEvents stream being stored at once (backpressure beyond this). */
const STREAM_IN_FLIGHT = 8;

interface BatchResult {
  accepted: number;
  rejected: number;
  errors: Array<{ index: number; field: string; message: string }>;
  ids: string[];
}

/**
 * Adds `heimdall.v1.EventService` (scope `ingest`): validates events, fills what the request
 * knows (correlation id, traceparent, the token's tenant), redacts, and stores them through the
 * ingest pipeline with its acknowledgement guarantees.
 */
export function addEventService(options: EventServiceOptions): void {
  const accepted = new Counter({ name: 'heimdall_events_accepted_total', help: 'Events accepted (stored, or queued with ack: queued).', registers: [options.metrics] });
  const rejected = new Counter({ name: 'heimdall_events_rejected_total', help: 'Events rejected as invalid.', registers: [options.metrics] });
  const refused = new Counter({ name: 'heimdall_events_refused_total', help: 'Events refused with a retryable error (memory, queue full, storage unavailable).', registers: [options.metrics] });

  /** Validates and stores one batch; `offset` numbers its events within a stream. */
  const writeBatch = async (events: readonly Event[], offset: number, wireBytes: number, ctx: CallContext): Promise<BatchResult> => {
    const rules: EventRules = { maxPayloadBytes: options.maxPayloadBytes, redaction: options.pipeline.processors.redaction };
    const traceparent = ctx.metadata.get('traceparent')[0];
    const trace = parseTraceparent(typeof traceparent === 'string' ? traceparent : undefined);
    const defaults = { correlationId: ctx.correlationId, traceId: trace?.traceId, spanId: trace?.spanId, tenant: ctx.principal?.tenant };
    const result: BatchResult = { accepted: 0, rejected: 0, errors: [], ids: [] };
    let text = '';
    for (const [i, e] of events.entries()) {
      const out = eventToRow(e, offset + i, defaults, rules);
      if ('errors' in out) {
        result.rejected += 1;
        for (const err of out.errors) if (result.errors.length < MAX_ERRORS) result.errors.push({ index: offset + i, field: err.field, message: err.message });
        continue;
      }
      text += `${JSON.stringify(out.row)}\n`;
      result.ids.push(out.id);
      result.accepted += 1;
    }
    rejected.inc(result.rejected);
    if (result.accepted === 0) return result;
    let admission: Admission | undefined;
    try {
      // The rows' text is held twice (as text and as the bytes submitted).
      admission = options.pipeline.admit(Math.max(wireBytes, text.length), 2);
      await options.pipeline.submit([{ table: EVENTS_TABLE, data: Buffer.from(text), rows: result.accepted }]);
    } catch (err) {
      if (err instanceof RetryableError) {
        refused.inc(result.accepted);
        throw unavailable(err.message, err.retryAfterMs);
      }
      if (err instanceof RequestTooLarge) throw new GrpcError(status.INVALID_ARGUMENT, err.message);
      throw err;
    } finally {
      admission?.release();
    }
    accepted.inc(result.accepted);
    return result;
  };

  const refuseIfAllInvalid = (r: BatchResult): BatchResult => {
    if (r.accepted === 0 && r.rejected > 0) throw invalidArgument(r.errors.map((e: FieldError) => ({ field: e.field, description: e.message })));
    return r;
  };

  options.grpc.addService(
    EventService,
    {
      async writeEvents(req, ctx) {
        return refuseIfAllInvalid(await writeBatch(req.events, 0, ctx.requestBytes, ctx));
      },
      async streamEvents(requests, ctx) {
        // Batches are stored concurrently (a few at a time); results are added up in stream order.
        const results: BatchResult[] = [];
        const inFlight = new Set<Promise<void>>();
        let offset = 0;
        let failure: Error | undefined;
        try {
          for await (const req of requests) {
            if (failure) break;
            const n = results.length;
            results.push({ accepted: 0, rejected: 0, errors: [], ids: [] });
            const p = writeBatch(req.events, offset, 0, ctx).then(
              (r) => void (results[n] = r),
              (err: unknown) => void (failure ??= err instanceof Error ? err : new Error(String(err))),
            );
            offset += req.events.length;
            inFlight.add(p);
            void p.finally(() => inFlight.delete(p));
            if (inFlight.size >= STREAM_IN_FLIGHT) await Promise.race(inFlight);
          }
        } finally {
          // Also when the stream breaks (bad message, cancel): the batches being stored finish first.
          await Promise.all(inFlight);
        }
        if (failure) throw failure;
        const total: BatchResult = { accepted: 0, rejected: 0, errors: [], ids: [] };
        for (const r of results) {
          total.accepted += r.accepted;
          total.rejected += r.rejected;
          total.errors.push(...r.errors.slice(0, MAX_ERRORS - total.errors.length));
          total.ids.push(...r.ids);
        }
        return refuseIfAllInvalid(total);
      },
    },
    'ingest',
  );
}
