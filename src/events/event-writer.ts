import { fromBinary } from '@bufbuild/protobuf';
import { Counter, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { AgentError, invalidFields } from '../errors/agent-error.js';
import { EventService, type Event } from '../gen/heimdall/v1/events_pb.js';
import { countElements, DECODED_PER_ELEMENT, decodedBytes } from '../ingest/otlp/decoded-size.js';
import type { Admission } from '../ingest/pipeline/admission.js';
import { RetryableError } from '../ingest/pipeline/errors.js';
import { encodeRows, type TableRows } from '../ingest/pipeline/formats.js';
import type { Pipeline } from '../ingest/pipeline/pipeline.js';
import type { Processors } from '../ingest/pipeline/processing.js';
import type { Redaction } from '../ingest/processors/redaction.js';
import type { CallContext } from '../server/grpc-service.js';
import { EVENTS } from '../storage/tables.js';
import { eventToRow, parseTraceparent } from './events.js';

/** Errors reported in one response, at most (a whole stream included). */
export const MAX_ERRORS = 100;

/** What storing some events did: counts, the first errors, the ids of accepted events (in order). */
export interface BatchResult {
  accepted: number;
  rejected: number;
  errors: Array<{ index: number; field: string; message: string }>;
  ids: string[];
}

export const emptyResult = (): BatchResult => ({ accepted: 0, rejected: 0, errors: [], ids: [] });

/** Options for createEventWriter. */
export interface EventWriterOptions {
  /** Where event rows go: the same batcher, writer, acknowledgement and durable queue as OTLP. */
  pipeline: Pick<Pipeline, 'admit' | 'turn' | 'consume'>;
  /** The `events` section: max_payload (largest payload of one event, as JSON), max_batch (most events in one message). */
  config: Config['events'];
  /** Most values one message may decode into (`ingest.max_elements`). */
  maxElements: number;
  metrics: Registry;
}

/** Stores the events of one request message (WriteEvents, or one message of StreamEvents). */
export interface EventWriter {
  /**
   * Decodes, validates and stores one message (`bytes`, already read, holding `count` events);
   * `offset` numbers its events within a stream, `what` names the message in errors. Throws an
   * AgentError when the message is refused as a whole (too many events or values, malformed, refused by the pipeline).
   */
  write(bytes: Buffer, count: number, offset: number, ctx: CallContext, what: string): Promise<BatchResult>;
}

/** Validates events and encodes the valid ones as rows, redacted with `redaction`. */
function toRows(events: readonly Event[], offset: number, ctx: CallContext, rules: { maxPayloadBytes: number; redaction: Redaction | undefined }): { result: BatchResult; encoded: TableRows } {
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
  return { result, encoded: encodeRows(EVENTS.name, rows) };
}

/**
 * Creates the writer of event messages: a message is admitted by its size, then by its decoded
 * size once its values are counted on the wire, before it is decoded; each step takes its turn.
 */
export function createEventWriter(options: EventWriterOptions): EventWriter {
  const { pipeline, config } = options;
  const accepted = new Counter({ name: 'heimdall_events_accepted_total', help: 'Events accepted (stored, or queued with ack: queued).', registers: [options.metrics] });
  const rejected = new Counter({ name: 'heimdall_events_rejected_total', help: 'Events rejected as invalid.', registers: [options.metrics] });
  const refused = new Counter({ name: 'heimdall_events_refused_total', help: 'Events refused with a retryable error (memory, queue full, storage unavailable).', registers: [options.metrics] });
  const tooLarge = new Counter({ name: 'heimdall_events_too_large_total', help: 'Event requests (or stream messages) refused for good: more than events.max_batch events or ingest.max_elements values.', registers: [options.metrics] });
  const schema = EventService.method.writeEvents.input;

  /** Counts, decodes, validates and stores an admitted message. */
  const admitted = async (bytes: Buffer, admission: Admission, offset: number, ctx: CallContext): Promise<BatchResult> => {
    await pipeline.turn(bytes.length);
    let elements: number;
    try {
      elements = countElements(bytes, schema, options.maxElements);
    } catch (err) {
      tooLarge.inc();
      throw err;
    }
    admission.settle(decodedBytes(bytes.length, elements, DECODED_PER_ELEMENT.events));
    await pipeline.turn(bytes.length);
    let events: Event[];
    try {
      events = fromBinary(schema, bytes).events;
    } catch (err) {
      throw new AgentError('invalid_argument', `malformed ${schema.typeName}: ${(err as Error).message}`);
    }
    await pipeline.turn(bytes.length);
    let result = emptyResult();
    const encode = ({ redaction }: Processors): TableRows[] => {
      const out = toRows(events, offset, ctx, { maxPayloadBytes: config.max_payload, redaction });
      result = out.result;
      return [out.encoded];
    };
    const stored = pipeline.consume({ encode }, admission);
    rejected.inc(result.rejected);
    try {
      await stored;
    } catch (err) {
      if (err instanceof RetryableError) refused.inc(result.accepted);
      throw err;
    }
    accepted.inc(result.accepted);
    return result;
  };

  return {
    async write(bytes, count, offset, ctx, what) {
      if (count > config.max_batch) {
        tooLarge.inc();
        throw invalidFields([{ field: 'events', description: `${what} holds ${count} events, more than events.max_batch (${config.max_batch}) allows; send them in smaller batches` }]);
      }
      let admission: Admission | undefined;
      try {
        // The reservation made while grpc-js read the message is handed over to the message's own admission.
        ctx.releaseMessage(bytes);
        admission = pipeline.admit(bytes.length, 1);
        return await admitted(bytes, admission, offset, ctx);
      } finally {
        admission?.release();
      }
    },
  };
}
