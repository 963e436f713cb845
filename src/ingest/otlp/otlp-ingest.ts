import { fromBinary, fromJson, type DescMessage, type JsonValue, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { Counter, type Registry } from 'prom-client';
import type { Principal } from '../../auth/auth.js';
import { TRACES } from '../../storage/tables.js';
import { RetryableError } from '../pipeline/errors.js';
import type { Admission, Pipeline } from '../pipeline/pipeline.js';
import { mergeResourceAttributes, TENANT_ATTRIBUTE } from '../processors/enrichment.js';
import type { RedMetrics, SpanSummary } from '../red-metrics.js';
import { countElements, DECODED_PER_ELEMENT, decodedBytes } from './decoded-size.js';
import { hexIdsToBase64 } from './json.js';
import { rejectionMessage } from './result.js';
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

/**
 * Creates the receivers' shared path into the pipeline, with the Collector's counters
 * (heimdall_receiver_{accepted,refused,rejected,failed}_{spans,log_records,metric_points}_total).
 * Large requests are taken in steps (count, decode, convert, encode), one step per event-loop
 * turn, so probes never wait behind a whole request.
 */
export function createOtlpIngest(options: OtlpIngestOptions): OtlpIngest {
  const { pipeline } = options;
  const counters = (kind: string, help: string) =>
    Object.fromEntries(
      (['spans', 'log_records', 'metric_points'] as const).map((item) => [
        item,
        new Counter({ name: `heimdall_receiver_${kind}_${item}_total`, help: help.replace('Items', item.replace('_', ' ')), labelNames: ['transport'] as const, registers: [options.metrics] }),
      ]),
    ) as Record<'spans' | 'log_records' | 'metric_points', Counter<'transport'>>;
  const accepted = counters('accepted', 'Items accepted (stored, or queued with ack: queued), by transport.');
  const refused = counters('refused', 'Items refused with a retryable error (memory, queue full, storage unavailable), by transport.');
  const rejected = counters('rejected', 'Items rejected as invalid and reported in partial_success, by transport.');
  const failed = counters('failed', 'Items lost to an internal error, by transport.');

  const decode = <Req extends DescMessage>(schema: Req, bytes: Buffer): MessageShape<Req> => {
    try {
      return fromBinary(schema, bytes);
    } catch (err) {
      throw new MalformedRequest(schema.typeName, (err as Error).message, 'protobuf');
    }
  };
  const parseJson = (schema: DescMessage, body: Buffer): JsonValue => {
    try {
      return hexIdsToBase64(JSON.parse(body.toString('utf8'))) as JsonValue;
    } catch (err) {
      throw new MalformedRequest(schema.typeName, (err as Error).message, 'JSON');
    }
  };
  const decodeJson = <Req extends DescMessage>(schema: Req, json: JsonValue): MessageShape<Req> => {
    try {
      return fromJson(schema, json, { ignoreUnknownFields: true });
    } catch (err) {
      throw new MalformedRequest(schema.typeName, (err as Error).message, 'JSON');
    }
  };

  /**
   * Converts and encodes a request (hot path first, else decoded). Data written with a
   * tenant-bound token carries the token's tenant as a resource attribute.
   */
  const prepare = async <Req extends DescMessage, Res extends DescMessage>(signal: Signal<Req, Res>, body: Buffer, json: boolean, tenant: string | undefined, admission: Admission): Promise<Prepared> => {
    const step = () => pipeline.turn(body.length);
    await step();
    const elements = countElements(body, json ? 'json' : signal.request, options.maxElements);
    const overrides = tenant === undefined ? undefined : { [TENANT_ATTRIBUTE]: tenant };
    if (!json && signal.fast) {
      await step();
      const fast = signal.fast(body, { ...pipeline.processors, resourceOverrides: overrides });
      if (fast) return fast;
    }
    // Decoded messages take memory by their elements, whatever the bytes.
    admission.settle(decodedBytes(body.length, elements, DECODED_PER_ELEMENT[json ? 'json' : signal.name]));
    await step();
    let request: MessageShape<Req>;
    if (json) {
      const tree = parseJson(signal.request, body);
      await step();
      request = decodeJson(signal.request, tree);
    } else request = decode(signal.request, body);
    await step();
    const conversion = signal.convert(request);
    if (overrides) mergeResourceAttributes(conversion, overrides, 'override');
    await step();
    const parts = pipeline.process(conversion);
    // Span metrics are taken after the processors: their labels show span and service names as stored (redacted).
    const spans: SpanSummary[] = (signal.name === 'traces' ? (conversion.tables.get(TRACES.name) ?? []) : []).map((row) => ({
      service: row.ServiceName as string,
      name: row.SpanName as string,
      kind: row.SpanKind as string,
      status: row.StatusCode as string,
      durationSeconds: Number(row.Duration) / 1e9,
    }));
    return { parts, accepted: conversion.accepted, rejected: conversion.rejected, reasons: conversion.reasons, spans };
  };

  return {
    async ingest(signal, body, encoding, transport, admission, principal) {
      const labels = { transport };
      const prepared = await prepare(signal, body, encoding === 'json', principal?.tenant, admission);
      if (prepared.rejected > 0) rejected[signal.item].inc(labels, prepared.rejected);
      // Span metrics are counted only once the spans are accepted, so a refused and retried export counts once.
      try {
        await pipeline.submit(prepared.parts);
        options.red?.observe(prepared.spans);
        accepted[signal.item].inc(labels, prepared.accepted);
      } catch (err) {
        if (err instanceof RetryableError) refused[signal.item].inc(labels, prepared.accepted);
        else failed[signal.item].inc(labels, prepared.accepted);
        throw err;
      }
      return signal.reply(prepared.rejected, rejectionMessage(prepared, signal.item.replace('_', ' ')));
    },
  };
}
