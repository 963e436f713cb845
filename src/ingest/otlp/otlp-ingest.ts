import { fromBinary, fromJson, type DescMessage, type JsonValue, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { Registry } from 'prom-client';
import type { Principal } from '../../auth/auth.js';
import { TRACES } from '../../storage/tables.js';
import type { Admission } from '../pipeline/admission.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Batch } from '../pipeline/processing.js';
import { mergeResourceAttributes, TENANT_ATTRIBUTE } from '../processors/enrichment.js';
import { SpanSummaries, type RedMetrics } from '../red-metrics.js';
import { countElements, DECODED_PER_ELEMENT, decodedBytes } from './decoded-size.js';
import { hexIdsToBase64 } from './json.js';
import { createReceiverCounters } from './receiver-counters.js';
import { rejectionMessage, type Conversion } from './result.js';
import type { Prepared, Signal } from './signals.js';

/** A request whose bytes are not a valid message of its type (or not valid OTLP/JSON). */
export class MalformedRequest extends Error {
  override name = 'MalformedRequest';
  constructor(
    readonly typeName: string,
    readonly reason: string,
    format: 'protobuf' | 'JSON',
  ) {
    super(`malformed ${format} ${typeName}: ${reason}`);
  }
}

/** Options for createOtlpIngest. */
export interface OtlpIngestOptions {
  /** Where converted rows go. */
  pipeline: Pipeline;
  /** Span-derived RED metrics, when enabled. */
  red: RedMetrics | undefined;
  /** Most values one request may decode into (`ingest.max_elements`). */
  maxElements: number;
  /** Registry for the receiver counters. */
  metrics: Registry;
}

/** Takes OTLP export requests, from either transport, to the pipeline. */
export interface OtlpIngest {
  /**
   * Counts, decodes, converts and submits one admitted request body (protobuf or OTLP/JSON) and
   * returns its reply (with partial_success). Settles `admission` to the decoded size once the
   * request's elements are counted. Throws MalformedRequest, RequestTooLarge (too many elements,
   * or alone over a limit), RetryableError (memory, queue, storage), or what storing threw.
   */
  ingest<Req extends DescMessage, Res extends DescMessage>(
    signal: Signal<Req, Res>,
    body: Buffer,
    encoding: 'protobuf' | 'json',
    transport: 'grpc' | 'http',
    admission: Admission,
    principal: Principal | undefined,
  ): Promise<MessageInitShape<Res>>;
}

/** What a request held once encoded: its items, and the spans stored (for the RED metrics). */
type Outcome = Omit<Prepared, 'parts'>;

/** A request handed to the pipeline: what it held (undefined: its encoder declined it), and its storing (already caught once, so never unhandled). */
interface Handed<O extends Outcome | undefined = Outcome> {
  outcome: O;
  stored: Promise<void>;
}

/** `f(input)`, its error thrown as MalformedRequest of `schema` in `format`. */
function malformedUnless<T>(schema: DescMessage, format: 'protobuf' | 'JSON', f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new MalformedRequest(schema.typeName, (err as Error).message, format);
  }
}

/** Decodes a request body (protobuf, or OTLP/JSON in two steps), each step in its turn. Throws MalformedRequest. */
async function decodeBody<Req extends DescMessage>(schema: Req, body: Buffer, json: boolean, step: () => Promise<void>): Promise<MessageShape<Req>> {
  await step();
  if (!json) return malformedUnless(schema, 'protobuf', () => fromBinary(schema, body));
  const tree = malformedUnless(schema, 'JSON', () => hexIdsToBase64(JSON.parse(body.toString('utf8'))) as JsonValue);
  await step();
  return malformedUnless(schema, 'JSON', () => fromJson(schema, tree, { ignoreUnknownFields: true }));
}

/** A conversion's items, and its spans as stored (read after the processors: names as redacted). */
function outcomeOf(signal: Signal['name'], conversion: Conversion): Outcome {
  const spans = new SpanSummaries();
  for (const row of signal === 'traces' ? (conversion.tables.get(TRACES.name) ?? []) : []) spans.add(row.ServiceName as string, row.SpanName as string, row.SpanKind as string, row.StatusCode as string, Number(row.Duration) / 1e9);
  return { accepted: conversion.accepted, rejected: conversion.rejected, reasons: conversion.reasons, spans };
}

/**
 * Creates the receivers' shared path into the pipeline, with the Collector's counters
 * (heimdall_receiver_{accepted,refused,rejected,failed}_{spans,log_records,metric_points}_total).
 * Large requests are taken in steps (count, decode, convert, encode), one step per event-loop
 * turn, so probes never wait behind a whole request.
 */
export function createOtlpIngest(options: OtlpIngestOptions): OtlpIngest {
  const { pipeline } = options;
  const counters = createReceiverCounters(options.metrics);

  /** Hands a batch to the pipeline, which processes and encodes it now; `taken` then says what it held. */
  const hand = <O extends Outcome | undefined>(batch: Batch, admission: Admission, taken: () => O): Handed<O> => {
    const stored = pipeline.consume(batch, admission);
    // Awaited by ingest; until then a refusal must not count as unhandled.
    stored.catch(() => undefined);
    return { outcome: taken(), stored };
  };

  /**
   * The hot path (trace requests in protobuf: wire bytes to rows, with the pipeline's processors),
   * else decoded and converted. Data written with a tenant-bound token carries the token's tenant
   * as a resource attribute.
   */
  const prepare = async <Req extends DescMessage, Res extends DescMessage>(signal: Signal<Req, Res>, body: Buffer, json: boolean, tenant: string | undefined, admission: Admission): Promise<Handed> => {
    const step = () => pipeline.turn(body.length);
    await step();
    const fast = json ? undefined : signal.fast;
    // Every element counted takes at least one byte of protobuf, so the hot path counts only bodies
    // longer than the limit; it bounds nesting itself (nested AnyValues decode with a recursion limit).
    const count = () => countElements(body, json ? 'json' : signal.request, options.maxElements);
    let elements = fast && body.length <= options.maxElements ? undefined : count();
    const overrides = tenant === undefined ? undefined : { [TENANT_ATTRIBUTE]: tenant };
    if (fast) {
      await step();
      let prepared: Prepared | undefined;
      const handed = hand({ encode: (processors) => (prepared = fast(body, { ...processors, resourceOverrides: overrides }))?.parts }, admission, () => prepared);
      if (handed.outcome) return { outcome: handed.outcome, stored: handed.stored };
    }
    elements ??= count();
    // Decoded messages take memory by their elements, whatever the bytes.
    admission.settle(decodedBytes(body.length, elements, DECODED_PER_ELEMENT[json ? 'json' : signal.name]));
    const request = await decodeBody(signal.request, body, json, step);
    await step();
    const conversion = signal.convert(request);
    if (overrides) mergeResourceAttributes(conversion, overrides, 'override');
    await step();
    return hand({ conversion }, admission, () => outcomeOf(signal.name, conversion));
  };

  return {
    async ingest(signal, body, encoding, transport, admission, principal) {
      const { outcome, stored } = await prepare(signal, body, encoding === 'json', principal?.tenant, admission);
      counters.rejected(signal.item, transport, outcome.rejected);
      // Span metrics are counted only once the spans are accepted, so a refused and retried export counts once.
      try {
        await stored;
      } catch (err) {
        counters.lost(signal.item, transport, outcome.accepted, err);
        throw err;
      }
      options.red?.observe(outcome.spans);
      counters.accepted(signal.item, transport, outcome.accepted);
      return signal.reply(outcome.rejected, rejectionMessage(outcome, signal.item.replace('_', ' ')));
    },
  };
}
