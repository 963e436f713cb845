import { fromBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { Counter, type Registry } from 'prom-client';
import { EventService, type Event } from '../gen/heimdall/v1/events_pb.js';
import { countElements, DECODED_PER_ELEMENT, decodedBytes } from '../ingest/otlp/decoded-size.js';
import { countTopLevel } from '../ingest/otlp/element-count.js';
import { RetryableError } from '../ingest/pipeline/errors.js';
import { encodeRows, type TableRows } from '../ingest/pipeline/formats.js';
import { grpcRefusal, reserveMessage } from '../ingest/pipeline/grpc-refusal.js';
import type { Admission, Pipeline } from '../ingest/pipeline/pipeline.js';
import { invalidFields } from '../errors/agent-error.js';
import { GrpcError } from '../server/errors.js';
import type { GrpcServer } from '../server/grpc.js';
import type { CallContext } from '../server/grpc-service.js';
import { EVENTS } from '../storage/tables.js';
import { eventToRow, parseTraceparent, type EventRules } from './events.js';

/** Options for addEventService. */
export interface EventServiceOptions {
  grpc: GrpcServer;
  /** Where event rows go: the same batcher, writer, acknowledgement and durable queue as OTLP. */
  pipeline: Pipeline;
  /** Largest payload of one event, as JSON. */
  maxPayloadBytes: number;
  /** Most events in one WriteEvents request or StreamEvents message (`events.max_batch`). */
  maxBatch: number;
  /** Most values one request or message may decode into (`ingest.max_elements`). */
  maxElements: number;
  metrics: Registry;
}

/** Errors reported in one response, at most (a whole stream included). */
const MAX_ERRORS = 100;
/** Batches of one StreamEvents stream being stored at once (backpressure beyond this). */
const STREAM_IN_FLIGHT = 8;
/** The field of WriteEventsRequest and StreamEventsRequest that holds the events. */
const EVENTS_FIELD = 1;

/** What storing some events did: counts, the first errors, the ids of accepted events (in order). */
interface BatchResult {
  accepted: number;
  rejected: number;
  errors: Array<{ index: number; field: string; message: string }>;
  ids: string[];
}

const emptyResult = (): BatchResult => ({ accepted: 0, rejected: 0, errors: [], ids: [] });

/**
 * Adds `heimdall.v1.EventService` (scope `ingest`): validates events, fills what the request
 * knows (correlation id, traceparent, the token's tenant), redacts, and stores them through the
 * ingest pipeline with its acknowledgement guarantees. A message is admitted before grpc-js reads
 * it, then by its decoded size once its events and values are counted on the wire, before it is
 * decoded: more than `events.max_batch` events or `ingest.max_elements` values is INVALID_ARGUMENT
 * before anything is stored. A stream keeps running totals only: at most 100 errors and
 * `events.max_batch` ids in its reply, whatever its length.
 */
export function addEventService(options: EventServiceOptions): void {
  const { pipeline } = options;
  const accepted = new Counter({ name: 'heimdall_events_accepted_total', help: 'Events accepted (stored, or queued with ack: queued).', registers: [options.metrics] });
  const rejected = new Counter({ name: 'heimdall_events_rejected_total', help: 'Events rejected as invalid.', registers: [options.metrics] });
  const refused = new Counter({ name: 'heimdall_events_refused_total', help: 'Events refused with a retryable error (memory, queue full, storage unavailable).', registers: [options.metrics] });
  const tooLarge = new Counter({ name: 'heimdall_events_too_large_total', help: 'Event requests (or stream messages) refused for good: more than events.max_batch events or ingest.max_elements values.', registers: [options.metrics] });

  /**
   * Decodes, validates and stores one request message (`bytes`, already read, holding `count`
   * events); `offset` numbers its events within a stream. Throws a GrpcError when the message is
   * refused as a whole.
   */
  const writeBatch = async (bytes: Buffer, count: number, offset: number, ctx: CallContext, what: string): Promise<BatchResult> => {
    if (count > options.maxBatch) {
      tooLarge.inc();
      throw invalidFields([{ field: 'events', description: `${what} holds ${count} events, more than events.max_batch (${options.maxBatch}) allows; send them in smaller batches` }]);
    }
    let admission: Admission | undefined;
    try {
      // The reservation made while grpc-js read the message is handed over to the message's own admission.
      ctx.releaseMessage(bytes);
      admission = pipeline.admit(bytes.length, 1);
      await pipeline.turn(bytes.length);
      let elements: number;
      try {
        elements = countElements(bytes, EventService.method.writeEvents.input, options.maxElements);
      } catch (err) {
        tooLarge.inc();
        throw err;
      }
      admission.settle(decodedBytes(bytes.length, elements, DECODED_PER_ELEMENT.events));
      await pipeline.turn(bytes.length);
      let events: Event[];
      try {
        events = fromBinary(EventService.method.writeEvents.input, bytes).events;
      } catch (err) {
        throw new GrpcError(status.INVALID_ARGUMENT, `malformed ${EventService.method.writeEvents.input.typeName}: ${(err as Error).message}`);
      }
      await pipeline.turn(bytes.length);
      const result = toRows(events, offset, ctx);
      rejected.inc(result.rejected);
      if (result.accepted > 0) {
        try {
          await pipeline.submit([result.encoded]);
        } catch (err) {
          if (err instanceof RetryableError) refused.inc(result.accepted);
          throw err;
        }
        accepted.inc(result.accepted);
      }
      return result;
    } catch (err) {
      throw grpcRefusal(err);
    } finally {
      admission?.release();
    }
  };

  /** Validates events and encodes the valid ones as rows. */
  const toRows = (events: readonly Event[], offset: number, ctx: CallContext): BatchResult & { encoded: TableRows } => {
    const rules: EventRules = { maxPayloadBytes: options.maxPayloadBytes, redaction: pipeline.processors.redaction };
    const traceparent = ctx.metadata.get('traceparent')[0];
    const trace = parseTraceparent(typeof traceparent === 'string' ? traceparent : undefined);
    const defaults = { correlationId: ctx.correlationId, traceId: trace?.traceId, spanId: trace?.spanId, tenant: ctx.principal?.tenant };
    const result = emptyResult();
    const rows: Array<Record<string, unknown>> = [];
    for (const [i, e] of events.entries()) {
      const out = eventToRow(e, offset + i, defaults, rules);
      if ('errors' in out) {
        result.rejected += 1;
        for (const err of out.errors) if (result.errors.length < MAX_ERRORS) result.errors.push({ index: offset + i, field: err.field, message: err.message });
        continue;
      }
      rows.push(out.row);
      result.ids.push(out.id);
      result.accepted += 1;
    }
    return { ...result, encoded: encodeRows(EVENTS.name, rows) };
  };

  /** Adds a batch's result to a stream's running totals, keeping the first errors and ids only. */
  const fold = (total: BatchResult, r: BatchResult): void => {
    total.accepted += r.accepted;
    total.rejected += r.rejected;
    total.errors.push(...r.errors.slice(0, MAX_ERRORS - total.errors.length));
    total.ids.push(...r.ids.slice(0, options.maxBatch - total.ids.length));
  };

  const refuseIfAllInvalid = ({ accepted, rejected, errors, ids }: BatchResult): BatchResult => {
    if (accepted === 0 && rejected > 0) throw invalidFields(errors.map((e) => ({ field: e.field, description: e.message })));
    return { accepted, rejected, errors, ids };
  };

  options.grpc.addService(
    EventService,
    {
      writeEvents: {
        async raw(bytes: Buffer, ctx: CallContext) {
          return refuseIfAllInvalid(await writeBatch(bytes, countTopLevel(bytes, EVENTS_FIELD), 0, ctx, 'the request'));
        },
      },
      streamEvents: {
        async rawStream(requests: AsyncIterable<Buffer>, ctx: CallContext) {
          // Batches are stored a few at a time; their results are added up in stream order, as they complete.
          const total = emptyResult();
          const pending: Array<Promise<BatchResult>> = [];
          let offset = 0;
          let failure: Error | undefined;
          const settleFirst = async (): Promise<void> => {
            const first = pending.shift();
            if (!first) return;
            try {
              fold(total, await first);
            } catch (err) {
              failure ??= err as Error; // writeBatch throws errors only (grpcRefusal keeps them)
            }
          };
          try {
            let n = 0;
            for await (const bytes of requests) {
              if (failure !== undefined) break;
              const count = countTopLevel(bytes, EVENTS_FIELD);
              const batch = writeBatch(bytes, count, offset, ctx, `message ${n}`);
              // A rejection is read by settleFirst; until then it must not count as unhandled.
              batch.catch(() => undefined);
              pending.push(batch);
              offset += count;
              n += 1;
              if (pending.length >= STREAM_IN_FLIGHT) await settleFirst();
            }
          } finally {
            // Also when the stream breaks (bad message, cancel): the batches being stored finish first.
            while (pending.length > 0) await settleFirst();
          }
          if (failure !== undefined) throw failure;
          return refuseIfAllInvalid(total);
        },
      },
    },
    'ingest',
    { reserve: (bytes) => reserveMessage(pipeline, bytes) },
  );
}
