import { existsSync, statfsSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';
import type { HealthReporter } from '../../health/registry.js';
import type { Pipeline } from '../../ingest/pipeline/pipeline.js';
import type { Storage } from '../../storage/storage.js';
import type { TaskRunner } from './kind.js';
import { KIND_PARAMS } from './params.js';

/** What the system check looks at. */
export interface SystemCheckDeps {
  storage: Storage;
  pipeline: Pick<Pipeline, 'load'>;
  /** Pings the jobs' Redis, when one is configured. */
  pingRedis: (() => Promise<void>) | undefined;
  /** Directories whose file systems must keep space free (data, queue, exports). */
  dataPaths: readonly string[];
  /** Byte budgets set in config (the embedded store, the export directory), scored against their limits. */
  budgets: () => ReadonlyArray<{ name: string; used: number; limit: number }>;
  /** The `system-check` health component (gate strict): failed while the score is under the threshold. */
  reporter: HealthReporter;
  /** Whether a run of this scheduled job sets the component (an active scheduled check); on-demand runs only report. */
  reportsReadiness: (jobName: string) => boolean;
  metrics: Registry;
}

/** How long a ping may take before it counts as failed. */
const PING_TIMEOUT_MS = 3_000;

/** 100 at or under `good`, 0 at or over `bad`, linear between. */
const scale = (value: number, good: number, bad: number): number => Math.round(Math.max(0, Math.min(100, ((bad - value) / (bad - good)) * 100)));

async function timed(fn: () => Promise<void>, signal: AbortSignal): Promise<number> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
        signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - t0;
}

/**
 * The `system-check` task: scores storage and Redis (reachability and ping time), the pipeline
 * (memory and durable queue fill; 0 while the queue is stalled on its disk) and disk (space free where
 * the agent writes, and within the byte budgets set in config), 0-100 each; the
 * overall score is the lowest of the `critical` scopes. Under the threshold, the component fails with
 * the reasons: /status says degraded and the strict readiness is off (never the pod readiness).
 */
export function createSystemCheck(deps: SystemCheckDeps): TaskRunner {
  const gauge = new Gauge({ name: 'heimdall_system_check_score', help: 'Health score 0-100 of the last system check, by scope (and overall).', labelNames: ['scope'] as const, registers: [deps.metrics] });
  return async (raw, ctx) => {
    const p = KIND_PARAMS['system-check'].parse(raw);
    const scores: Record<string, number> = {};
    const notes: Record<string, string> = {};
    const ping = async (scope: string, fn: () => Promise<void>): Promise<void> => {
      try {
        const ms = await timed(fn, ctx.signal);
        scores[scope] = scale(ms, 100, 2_000) / 2 + 50; // reachable: 50-100 by ping time
        notes[scope] = `ping ${ms.toFixed(1)} ms`;
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        scores[scope] = 0;
        notes[scope] = `unreachable: ${(err as Error).message}`;
      }
    };
    await ping('storage', async () => {
      if (!deps.storage.ready) throw new Error('storage is not ready');
      await deps.storage.transport.ping();
    });
    if (deps.pingRedis) await ping('redis', deps.pingRedis);

    const load = deps.pipeline.load();
    const memory = load.memoryBytes / load.memoryLimit;
    const queue = load.queue ? load.queue.bytes / load.queue.capacity : 0;
    // A stalled queue (its disk failing) refuses data and stops draining, however empty it is.
    scores.queue = load.queue?.stalled ? 0 : Math.min(scale(memory, 0.5, 1), scale(queue, 0.5, 1));
    notes.queue = `memory ${(memory * 100).toFixed(1)}% of limit${load.queue ? `, durable queue ${(queue * 100).toFixed(1)}% full (${load.queue.records} records)${load.queue.stalled ? `, stalled: ${load.queue.stalled}` : ''}` : ''}`;

    let disk = 100;
    const free: string[] = [];
    const score = (what: string, pct: number): void => {
      disk = Math.min(disk, scale(-pct, -p.disk_ok_percent, -p.disk_min_percent));
      free.push(`${what} ${pct.toFixed(1)}% free`);
    };
    for (const path of deps.dataPaths) {
      if (!existsSync(path)) continue;
      const s = statfsSync(path);
      score(path, s.blocks > 0 ? (Number(s.bavail) / Number(s.blocks)) * 100 : 100);
    }
    // A budget set in config is the limit that counts (an emptyDir evicts the pod past its sizeLimit,
    // whatever the disk has free): 100 up to 90% of it (where trimming starts), 0 at it (inserts refused).
    for (const b of deps.budgets()) {
      const used = b.used / b.limit;
      disk = Math.min(disk, scale(used, 0.9, 1));
      free.push(`${b.name} ${(used * 100).toFixed(1)}% of ${b.limit} bytes used`);
    }
    scores.disk = disk;
    notes.disk = free.join(', ') || 'no data directory yet';

    const critical = Object.entries(scores).filter(([scope]) => (p.critical as string[]).includes(scope));
    const overall = Math.min(100, ...critical.map(([, s]) => s));
    for (const [scope, score] of Object.entries(scores)) gauge.set({ scope }, score);
    gauge.set({ scope: 'overall' }, overall);
    const low = critical.filter(([, s]) => s < p.threshold).map(([scope, s]) => `${scope} ${s} (${notes[scope] ?? ''})`);
    const summary = `score ${overall} (${Object.entries(scores).map(([k, v]) => `${k} ${v}${(p.critical as string[]).includes(k) ? '' : ' (not critical)'}`).join(', ')})`;
    if (ctx.jobName && deps.reportsReadiness(ctx.jobName)) {
      if (overall < p.threshold) deps.reporter.set('failed', `${summary} is under ${p.threshold}: ${low.join('; ')}`);
      else deps.reporter.set('ready', summary);
    }
    return { message: summary, result: { overall, threshold: p.threshold, scores, notes } };
  };
}
