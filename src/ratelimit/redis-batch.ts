/**
 * Bucket checks bound for Redis, gathered into one script call: the descriptors of one check and
 * the checks arriving in the same turn of the event loop go out together when the loop next
 * reaches its check phase (setImmediate), or at once when `maxBatch` are waiting. One round trip
 * and one script run in Redis answer them all, in the order they were taken.
 */

/** Redis' answer for one bucket: whether the hits were taken, and the tokens left (as text). */
export type BucketReply = [allowed: number, tokens: string];

/** Runs the bucket script over `keys` with three arguments each (capacity, rate, hits); answers two values a key. */
export type RunBuckets = (keys: string[], args: number[]) => Promise<unknown[]>;

/** Options for createRedisBatcher. */
export interface RedisBatcherOptions {
  run: RunBuckets;
  /** Longest wait for an answer, from the first check of a batch; past it the whole batch fails. */
  timeoutMs: number;
  /** Checks per script call at most (1: each goes out alone, at once). */
  maxBatch: number;
}

/** Gathers bucket checks into script calls. */
export interface RedisBatcher {
  /** Queues one check; resolves with Redis' answer, rejects when the batch fails or times out. */
  take(key: string, capacity: number, ratePerMs: number, hits: number): Promise<BucketReply>;
}

interface Batch {
  keys: string[];
  args: number[];
  waiting: Array<{ resolve: (r: BucketReply) => void; reject: (err: Error) => void }>;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
}

/** Creates the batcher. A batch is answered once: by Redis, by an error, or by its timeout, whichever comes first. */
export function createRedisBatcher(options: RedisBatcherOptions): RedisBatcher {
  let open: Batch | undefined;

  const settle = (batch: Batch, reply: unknown[] | undefined, err: Error | undefined): void => {
    if (batch.settled) return;
    batch.settled = true;
    clearTimeout(batch.timer);
    const n = batch.waiting.length;
    const failure = err ?? (reply?.length === 2 * n ? undefined : new Error(`redis answered ${reply?.length ?? 0} values for ${n} checks`));
    batch.waiting.forEach((w, i) => {
      const allowed = reply?.[2 * i];
      const tokens = reply?.[2 * i + 1];
      if (!failure && typeof allowed === 'number' && typeof tokens === 'string') w.resolve([allowed, tokens]);
      else w.reject(failure ?? new Error(`redis answered ${String(allowed)}, ${String(tokens)}`));
    });
  };

  const flush = (batch: Batch): void => {
    if (open === batch) open = undefined;
    const failed = (err: unknown) => settle(batch, undefined, err instanceof Error ? err : new Error(String(err)));
    try {
      options.run(batch.keys, batch.args).then((reply) => settle(batch, reply, undefined), failed);
    } catch (err) {
      failed(err);
    }
  };

  const start = (): Batch => {
    const batch: Batch = { keys: [], args: [], waiting: [], timer: undefined, settled: false };
    batch.timer = setTimeout(() => settle(batch, undefined, new Error(`redis check took over ${options.timeoutMs} ms`)), options.timeoutMs);
    if (options.maxBatch > 1) setImmediate(() => open === batch && flush(batch));
    return batch;
  };

  return {
    take(key, capacity, ratePerMs, hits) {
      const batch = (open ??= start());
      batch.keys.push(key);
      batch.args.push(capacity, ratePerMs, hits);
      const answered = new Promise<BucketReply>((resolve, reject) => batch.waiting.push({ resolve, reject }));
      if (batch.keys.length >= options.maxBatch) flush(batch);
      return answered;
    },
  };
}
