import { Gauge, type Registry } from 'prom-client';
import { AgentError } from '../errors/agent-error.js';
import { createFairQueue, type TenantTurns } from './fair-queue.js';

/** Options for createQueryScheduler. */
export interface QuerySchedulerOptions {
  /** Queries running at once, all tenants together (`query.max_concurrent`, default 4). */
  maxConcurrent: number;
  /** Queries of one tenant running at once (`query.max_concurrent_per_tenant`, default 2). */
  maxConcurrentPerTenant: number;
  /** Queries of one tenant waiting for a slot; past it RESOURCE_EXHAUSTED (`query.max_queued_per_tenant`, default 64). */
  maxQueuedPerTenant: number;
  /** Queries waiting for a slot, all tenants together; past it RESOURCE_EXHAUSTED (`query.max_queued`, default 256). */
  maxQueued: number;
  /** Longest a query waits for a slot; past it RESOURCE_EXHAUSTED (`query.queue_timeout`, default 30 s). */
  queueTimeoutMs: number;
  metrics: Registry;
  /** Told the limit (`max_queued_per_tenant`, `max_queued`, `queue_timeout`) each time a query is refused. */
  onRefused?: (limit: 'max_queued_per_tenant' | 'max_queued' | 'queue_timeout') => void;
}

/** Slots for storage queries, shared fairly between tenants. */
export interface QueryScheduler {
  /**
   * Runs `work` once a slot is free for `tenant` (any key that names who takes turns, as it should
   * read in a refusal: `tenant "a"`). Each free slot goes to the waiting tenant with the
   * fewest queries running, then to the one served least recently, so one tenant's many queries
   * delay another tenant's by at most the queries already running. Rejects
   * with RESOURCE_EXHAUSTED naming the limit when the tenant's queue or the queue of all is full or
   * the wait passes the queue timeout, and with the signal's reason when it aborts while waiting
   * (the work never runs).
   */
  run<T>(tenant: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

interface Waiter {
  start(): void;
  cancel(err: unknown): void;
}

/** Creates the fair scheduler of QueryService's storage queries. */
export function createQueryScheduler(options: QuerySchedulerOptions): QueryScheduler {
  const runningGauge = new Gauge({ name: 'heimdall_query_running', help: 'Storage queries of QueryService running.', registers: [options.metrics] });
  const queuedGauge = new Gauge({ name: 'heimdall_query_queued', help: 'Storage queries of QueryService waiting for a slot.', registers: [options.metrics] });
  const queue = createFairQueue<Waiter>({ onQueued: (n) => queuedGauge.set(n) });
  let running = 0;

  /** Starts waiting queries while slots are free, in the fair queue's order. */
  const dispatch = (): void => {
    while (running < options.maxConcurrent) {
      const next = queue.next(options.maxConcurrentPerTenant);
      if (!next) return;
      next.waiter.start();
    }
  };

  /** Why a query of `tenant` that must wait is refused (its queue, or the queue of all, is full), counted; undefined when it may wait. */
  const refusal = (tenant: string, t: TenantTurns<Waiter>): AgentError | undefined => {
    if (t.queue.length >= options.maxQueuedPerTenant) {
      options.onRefused?.('max_queued_per_tenant');
      return new AgentError(
        'resource_exhausted',
        `too many queries from ${tenant}: ${t.running} running and ${t.queue.length} waiting (query.max_concurrent_per_tenant ${options.maxConcurrentPerTenant}, query.max_queued_per_tenant ${options.maxQueuedPerTenant}); retry later`,
      );
    }
    if (queue.queued >= options.maxQueued) {
      options.onRefused?.('max_queued');
      return new AgentError('resource_exhausted', `too many queries waiting, all callers together: ${queue.queued} (query.max_queued ${options.maxQueued}); retry later`);
    }
    return undefined;
  };

  /** Queues `work` for a slot: started by dispatch, or cancelled by the queue timeout or the signal (never run then). */
  const wait = <T>(tenant: string, t: TenantTurns<Waiter>, work: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const fail = (err: unknown): void => reject(err instanceof Error ? err : new Error(String(err)));
      const onAbort = (): void => w.cancel(signal?.reason);
      const timer = setTimeout(() => {
        options.onRefused?.('queue_timeout');
        w.cancel(new AgentError('resource_exhausted', `no query slot within ${options.queueTimeoutMs} ms (query.queue_timeout; query.max_concurrent ${options.maxConcurrent} all tenants, query.max_concurrent_per_tenant ${options.maxConcurrentPerTenant}); retry later`));
      }, options.queueTimeoutMs);
      const w: Waiter = {
        start() {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          running += 1;
          t.running += 1;
          runningGauge.set(running);
          void Promise.resolve()
            .then(work)
            .then(resolve, fail)
            .finally(() => {
              running -= 1;
              t.running -= 1;
              runningGauge.set(running);
              queue.forget(tenant, t);
              dispatch();
            });
        },
        cancel(err) {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          queue.remove(tenant, t, w);
          fail(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(tenant, t, w);
      dispatch();
    });

  return {
    run<T>(tenant: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
      if (signal?.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      const t = queue.turns(tenant);
      const mustWait = running >= options.maxConcurrent || t.running >= options.maxConcurrentPerTenant;
      const refused = mustWait ? refusal(tenant, t) : undefined;
      if (refused) {
        queue.forget(tenant, t);
        return Promise.reject(refused);
      }
      return wait(tenant, t, work, signal);
    },
  };
}
