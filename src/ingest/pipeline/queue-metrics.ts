import { Counter, Gauge, type Registry } from 'prom-client';

/** Options for registerQueueMetrics. */
export interface QueueMetricsOptions {
  metrics: Registry;
  /** Bytes the queue may hold (ingest.queue.max_size). */
  maxBytes: number;
  /** Records appended and not yet stored, read at each scrape. */
  depth: () => number;
  /** Bytes the queue holds on disk, read at each scrape. */
  bytes: () => number;
}

/** The metrics the durable queue updates itself (the others are read at scrape). */
export interface QueueMetrics {
  /** Appends the queue refused, by reason: `full` or `write_failed`. */
  refused: Counter<'reason'>;
}

/** Registers the durable queue's own metrics: its size, capacity and bytes (read at scrape) and the refused appends. */
export function registerQueueMetrics(options: QueueMetricsOptions): QueueMetrics {
  const registers = [options.metrics];
  new Gauge({
    name: 'heimdall_exporter_queue_size',
    help: 'Requests in the durable queue not yet stored.',
    registers,
    collect() {
      this.set(options.depth());
    },
  });
  new Gauge({ name: 'heimdall_exporter_queue_capacity_bytes', help: 'Bytes the durable queue may hold.', registers }).set(options.maxBytes);
  new Gauge({
    name: 'heimdall_exporter_queue_bytes',
    help: 'Bytes the durable queue holds on disk.',
    registers,
    collect() {
      this.set(options.bytes());
    },
  });
  const refused = new Counter({
    name: 'heimdall_exporter_queue_refused_appends_total',
    help: 'Appends the durable queue refused (retryable), by reason: full (ingest.queue.max_size) or write_failed (the disk write did not complete).',
    labelNames: ['reason'] as const,
    registers,
  });
  return { refused };
}
