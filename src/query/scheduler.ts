import { Gauge, type Registry } from 'prom-client';
import { AgentError } from '../errors/agent-error.js';

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

interface TenantState {
  running: number;
  queue: Waiter[];
  /** When the tenant last got a slot (a sequence number; 0: not since it was last idle). */
  served: number;
}

/** Creates the fair scheduler of QueryService's storage queries. */
export function createQueryScheduler(options: QuerySchedulerOptions): QueryScheduler {
  const tenants = new Map<string, TenantState>();
  // Tenants with queries waiting; the one served least recently goes next.
  const waiting = new Set<string>();
  let running = 0;
  let served = 0;
  const runningGauge = new Gauge({ name: 'heimdall_query_running', help: 'Storage queries of QueryService running.', registers: [options.metrics] });
  const queuedGauge = new Gauge({ name: 'heimdall_query_queued', help: 'Storage queries of QueryService waiting for a slot.', registers: [options.metrics] });
  let queued = 0;

  const stateOf = (tenant: string): TenantState => {
    let s = tenants.get(tenant);
    if (!s) tenants.set(tenant, (s = { running: 0, queue: [], served: 0 }));
    return s;
  };
  const forget = (tenant: string, s: TenantState): void => {
    if (s.running === 0 && s.queue.length === 0) tenants.delete(tenant);
  };
  const dequeue = (tenant: string, s: TenantState, w: Waiter): void => {
    const i = s.queue.indexOf(w);
    if (i === -1) return;
    s.queue.splice(i, 1);
    queued -= 1;
    queuedGauge.set(queued);
    if (s.queue.length === 0) waiting.delete(tenant);
    forget(tenant, s);
  };

  /** Starts waiting queries while slots are free: each from the tenant with the fewest running, then the one served least recently. */
  const dispatch = (): void => {
    while (running < options.maxConcurrent) {
      let next: { tenant: string; s: TenantState } | undefined;
      for (const tenant of waiting) {
        const s = tenants.get(tenant);
        if (!s || s.running >= options.maxConcurrentPerTenant) continue;
        if (!next || s.running < next.s.running || (s.running === next.s.running && s.served < next.s.served)) next = { tenant, s };
      }
      if (!next) return;
      const w = next.s.queue.shift() as Waiter;
      queued -= 1;
      queuedGauge.set(queued);
      if (next.s.queue.length === 0) waiting.delete(next.tenant);
      next.s.served = ++served;
      w.start();
    }
  };

  return {
    run<T>(tenant: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
      if (signal?.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      const s = stateOf(tenant);
      const mustWait = running >= options.maxConcurrent || s.running >= options.maxConcurrentPerTenant;
      if (mustWait && s.queue.length >= options.maxQueuedPerTenant) {
        options.onRefused?.('max_queued_per_tenant');
        forget(tenant, s);
        return Promise.reject(new AgentError(
          'resource_exhausted',
          `too many queries from ${tenant}: ${s.running} running and ${s.queue.length} waiting (query.max_concurrent_per_tenant ${options.maxConcurrentPerTenant}, query.max_queued_per_tenant ${options.maxQueuedPerTenant}); retry later`,
        ));
      }
      if (mustWait && queued >= options.maxQueued) {
        options.onRefused?.('max_queued');
        forget(tenant, s);
        return Promise.reject(new AgentError('resource_exhausted', `too many queries waiting, all callers together: ${queued} (query.max_queued ${options.maxQueued}); retry later`));
      }
      return new Promise<T>((resolve, reject) => {
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
            s.running += 1;
            runningGauge.set(running);
            void Promise.resolve()
              .then(work)
              .then(resolve, fail)
              .finally(() => {
                running -= 1;
                s.running -= 1;
                runningGauge.set(running);
                forget(tenant, s);
                dispatch();
              });
          },
          cancel(err) {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            dequeue(tenant, s, w);
            fail(err);
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        s.queue.push(w);
        queued += 1;
        queuedGauge.set(queued);
        waiting.add(tenant);
        dispatch();
      });
    },
  };
}
