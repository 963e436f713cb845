import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { invalidFields } from '../errors/agent-error.js';
import { EventService } from '../gen/heimdall/v1/events_pb.js';
import { countTopLevel } from '../ingest/otlp/element-count.js';
import type { Pipeline } from '../ingest/pipeline/pipeline.js';
import type { ServiceRegistrar } from '../server/service-registry.js';
import type { CallContext } from '../server/grpc-service.js';
import { createEventWriter, emptyResult, MAX_ERRORS, type BatchResult, type EventWriter } from './event-writer.js';

/** Options for addEventService. */
export interface EventServiceOptions {
  /** Where the service is added (served on gRPC and on the admin port's Connect API). */
  services: ServiceRegistrar;
  /** Where event rows go: the same batcher, writer, acknowledgement and durable queue as OTLP. */
  pipeline: Pipeline;
  /** The `events` section: max_payload, max_batch. */
  config: Config['events'];
  /** The `ingest` section: max_elements, the most values one request or message may decode into. */
  ingest: Pick<Config['ingest'], 'max_elements'>;
  metrics: Registry;
}

/** Batches of one StreamEvents stream being stored at once (backpressure beyond this). */
const STREAM_IN_FLIGHT = 8;
/** The field of WriteEventsRequest and StreamEventsRequest that holds the events. */
const EVENTS_FIELD = 1;

/** Adds a batch's result to a stream's running totals, keeping the first errors and `maxIds` ids only. */
function fold(total: BatchResult, r: BatchResult, maxIds: number): void {
  total.accepted += r.accepted;
  total.rejected += r.rejected;
  total.errors.push(...r.errors.slice(0, MAX_ERRORS - total.errors.length));
  total.ids.push(...r.ids.slice(0, maxIds - total.ids.length));
}

/** The reply for a result; refuses (INVALID_ARGUMENT with the field violations) when every event was invalid. */
function refuseIfAllInvalid({ accepted, rejected, errors, ids }: BatchResult): BatchResult {
  if (accepted === 0 && rejected > 0) throw invalidFields(errors.map((e) => ({ field: e.field, description: e.message })));
  return { accepted, rejected, errors, ids };
}

/**
 * Stores the messages of one StreamEvents stream a few at a time, adding up their results in
 * stream order as they complete. Throws the first refusal, once the batches being stored finished.
 */
async function writeStream(requests: AsyncIterable<Buffer>, ctx: CallContext, writer: EventWriter, maxIds: number): Promise<BatchResult> {
  const total = emptyResult();
  const pending: Array<Promise<BatchResult>> = [];
  let offset = 0;
  let failure: Error | undefined;
  const settleFirst = async (): Promise<void> => {
    const first = pending.shift();
    if (!first) return;
    try {
      fold(total, await first, maxIds);
    } catch (err) {
      failure ??= err as Error; // the writer throws errors only
    }
  };
  try {
    let n = 0;
    for await (const bytes of requests) {
      if (failure !== undefined) break;
      const count = countTopLevel(bytes, EVENTS_FIELD);
      const batch = writer.write(bytes, count, offset, ctx, `message ${n}`);
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
  return total;
}

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
  const { pipeline, config } = options;
  const writer = createEventWriter({ pipeline, config, maxElements: options.ingest.max_elements, metrics: options.metrics });
  options.services.addService(
    EventService,
    {
      writeEvents: {
        async raw(bytes: Buffer, ctx: CallContext) {
          return refuseIfAllInvalid(await writer.write(bytes, countTopLevel(bytes, EVENTS_FIELD), 0, ctx, 'the request'));
        },
      },
      streamEvents: {
        async rawStream(requests: AsyncIterable<Buffer>, ctx: CallContext) {
          return refuseIfAllInvalid(await writeStream(requests, ctx, writer, config.max_batch));
        },
      },
    },
    'ingest',
    { reserve: (bytes, wait) => pipeline.reserveUnread(bytes, wait) },
  );
}
