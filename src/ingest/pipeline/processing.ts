import type { Config } from '../../config/schema.js';
import type { Conversion } from '../otlp/result.js';
import { createEnrichment, DEFAULT_ENRICHMENT_ENV } from '../processors/enrichment.js';
import { createRedaction, DEFAULT_KEY_PATTERNS, type Redaction } from '../processors/redaction.js';
import { encodeTables, type TableRows } from './formats.js';

/** The processors, as handed to a batch that encodes its rows itself (Batch.encode). */
export interface Processors {
  /** Secrets redaction (ingest.redaction); undefined when disabled. */
  redaction: Redaction | undefined;
  /** Resource attributes every row gets unless it has them (ingest.enrichment). */
  resourceDefaults: Readonly<Record<string, string>>;
}

/**
 * What a receiver hands the pipeline: rows converted from a request, which the pipeline processes
 * (enrichment, redaction) and encodes, or an encoder that writes rows itself with the processors it
 * is given (the OTLP trace hot path, events). An encoder that returns undefined declines the batch:
 * nothing is stored (the receiver then hands it over decoded).
 */
export type Batch = { conversion: Conversion } | { encode(processors: Processors): readonly TableRows[] | undefined };

/** The processors of the pipeline and the one place batches are processed and encoded. */
export interface Processing {
  readonly processors: Processors;
  /** Processes and encodes a batch (conversions in place); undefined when its encoder declined. */
  encode(batch: Batch): readonly TableRows[] | undefined;
}

/** Creates the processors from the `ingest` configuration. Throws naming a redaction pattern that is not a valid expression. */
export function createProcessing(config: Pick<Config['ingest'], 'redaction' | 'enrichment'>): Processing {
  const redaction = config.redaction.enabled
    ? createRedaction({
        keys: [...(config.redaction.defaults ? DEFAULT_KEY_PATTERNS : []), ...config.redaction.keys],
        values: config.redaction.values,
        builtins: config.redaction.defaults,
        replacement: config.redaction.replacement,
      })
    : undefined;
  const enrichment = config.enrichment.enabled ? createEnrichment(config.enrichment.from_env ?? DEFAULT_ENRICHMENT_ENV) : undefined;
  const processors: Processors = { redaction, resourceDefaults: enrichment?.attributes ?? {} };
  return {
    processors,
    encode(batch) {
      if (!('conversion' in batch)) return batch.encode(processors);
      enrichment?.process(batch.conversion);
      redaction?.process(batch.conversion);
      return encodeTables(batch.conversion);
    },
  };
}
