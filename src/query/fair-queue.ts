/** One tenant's place in the fair queue: its queries running, those waiting, and when it last got a slot. */
export interface TenantTurns<W> {
  running: number;
  queue: W[];
  /** When the tenant last got a slot (a sequence number; 0: not since it was last idle). */
  served: number;
}

/** Options for createFairQueue. */
export interface FairQueueOptions {
  /** Told the number of waiters, all tenants together, each time it changes (for a gauge). */
  onQueued?: (queued: number) => void;
}

/**
 * The waiters of every tenant and whose turn is next. It only keeps order: the caller counts
 * what runs (`running` of a tenant's turns) and decides when a slot is free.
 */
export interface FairQueue<W> {
  /** Waiters, all tenants together. */
  readonly queued: number;
  /** The tenant's turns, made when it has none (kept until `forget` finds it idle). */
  turns(tenant: string): TenantTurns<W>;
  /** Drops the tenant's turns when nothing of it runs or waits, so a returning tenant starts afresh. */
  forget(tenant: string, t: TenantTurns<W>): void;
  /** Queues a waiter of the tenant. */
  push(tenant: string, t: TenantTurns<W>, w: W): void;
  /** Takes a waiter out of the queue (it stopped waiting); nothing when it is not queued. */
  remove(tenant: string, t: TenantTurns<W>, w: W): void;
  /**
   * Takes the next waiter to start: from the waiting tenant below `maxPerTenant` running with the
   * fewest running, then the one served least recently; marks that tenant served. Undefined when
   * no waiting tenant may start one.
   */
  next(maxPerTenant: number): { tenant: string; turns: TenantTurns<W>; waiter: W } | undefined;
}

/** Creates an empty fair queue. */
export function createFairQueue<W>(options: FairQueueOptions = {}): FairQueue<W> {
  const tenants = new Map<string, TenantTurns<W>>();
  // Tenants with waiters; the one served least recently goes next.
  const waiting = new Set<string>();
  let queued = 0;
  let served = 0;
  const count = (delta: number): void => {
    queued += delta;
    options.onQueued?.(queued);
  };
  const forget = (tenant: string, t: TenantTurns<W>): void => {
    if (t.running === 0 && t.queue.length === 0) tenants.delete(tenant);
  };

  return {
    get queued() {
      return queued;
    },
    turns(tenant) {
      let t = tenants.get(tenant);
      if (!t) tenants.set(tenant, (t = { running: 0, queue: [], served: 0 }));
      return t;
    },
    forget,
    push(tenant, t, w) {
      t.queue.push(w);
      count(1);
      waiting.add(tenant);
    },
    remove(tenant, t, w) {
      const i = t.queue.indexOf(w);
      if (i === -1) return;
      t.queue.splice(i, 1);
      count(-1);
      if (t.queue.length === 0) waiting.delete(tenant);
      forget(tenant, t);
    },
    next(maxPerTenant) {
      let next: { tenant: string; t: TenantTurns<W> } | undefined;
      for (const tenant of waiting) {
        const t = tenants.get(tenant);
        if (!t || t.running >= maxPerTenant) continue;
        if (!next || t.running < next.t.running || (t.running === next.t.running && t.served < next.t.served)) next = { tenant, t };
      }
      if (!next) return undefined;
      const waiter = next.t.queue.shift() as W;
      count(-1);
      if (next.t.queue.length === 0) waiting.delete(next.tenant);
      next.t.served = ++served;
      return { tenant: next.tenant, turns: next.t, waiter };
    },
  };
}
