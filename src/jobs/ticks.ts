import type { Logger } from '../telemetry/logger.js';
import type { RunTrigger } from './history.js';
import type { Entry } from './job-table.js';
import type { Lease, Leases } from './lease.js';
import type { RunCaps } from './run-caps.js';
import type { Runner } from './runner.js';
import { missedTick } from './schedule.js';
import type { ScheduledRuns, SkippedTicks } from './scheduled-runs.js';

/** Ticks of scheduled jobs: caps, the cluster claim of each tick, then the run. */
export interface Ticks {
  /**
   * One tick of `e` (from croner, or a missed one at start). Resolves when the run ends, so croner's
   * protection sees it; a tick not run here is counted in heimdall_job_ticks_skipped_total by reason.
   */
  tick(e: Entry, trigger: RunTrigger, tickMs: number): Promise<void>;
  /** Runs, for each active run-once job in `entries`, the newest tick missed between its last recorded tick and `startedAt`; once per start (a retried restore calls it again: no-op). */
  runMissed(entries: readonly Entry[], lastTicks: ReadonlyMap<string, number>, startedAt: number): void;
}

/** Creates it; `current(e)` is false once `e` was replaced or removed, or the agent stops (its ticks are dropped). */
export function createTicks(options: { runs: ScheduledRuns; caps: RunCaps; runner: Runner; leases: Leases | undefined; skipped: SkippedTicks; current: (e: Entry) => boolean; logger: Logger }): Ticks {
  const { runs, leases, logger } = options;
  /** The claim of a cluster job's tick and its lease, or why it is not run here. */
  const claim = async (e: Entry, tickMs: number): Promise<{ lease?: Lease | undefined; refused?: string | undefined }> => {
    if (e.spec.scope !== 'cluster' || !leases) return {};
    try {
      if (!(await leases.claimTick(e.spec.name, tickMs))) return { refused: 'claimed-elsewhere' };
      return await runs.takeLease(e);
    } catch (err) {
      logger.warn({ err, job: e.spec.name }, 'cluster job tick skipped: redis cannot grant its lease');
      return { refused: 'redis-unavailable' };
    }
  };
  const tick: Ticks['tick'] = async (e, trigger, tickMs) => {
    if (!options.current(e)) return;
    const skip = (reason: string): void => {
      options.skipped(e.spec.name, reason);
      logger.debug({ job: e.spec.name, tick: new Date(tickMs).toISOString(), reason }, 'tick not run here');
    };
    if (e.spec.concurrency === 'forbid' && e.running.size > 0) return skip('overlap');
    // Past a cap the tick is skipped before any cluster claim, so another replica may run it.
    const slot = options.caps.take(e);
    if (slot.cap) {
      const cap = slot.cap;
      if (e.skipping !== cap.reason) logger.warn({ job: e.spec.name, tick: new Date(tickMs).toISOString(), reason: cap.reason }, `tick skipped: ${cap.message}; later ticks are skipped (and counted) while it lasts`);
      e.skipping = cap.reason;
      return skip(cap.reason);
    }
    e.skipping = undefined;
    const { lease, refused } = await claim(e, tickMs);
    slot.release();
    if (refused) return skip(refused);
    const l = runs.start(e, trigger, tickMs, lease);
    await new Promise<void>((resolve) => {
      if (!options.runner.live(l.record.id)) return resolve();
      l.listeners.add((r) => {
        if (r.status !== 'pending' && r.status !== 'running') resolve();
      });
      l.controller.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  };
  let missedRun = false;
  return {
    tick,
    runMissed(entries, lastTicks, startedAt) {
      if (missedRun) return;
      missedRun = true;
      for (const e of entries) {
        if (e.spec.misfire !== 'run-once' || !e.spec.active) continue;
        const missed = missedTick(e.cron, lastTicks.get(e.spec.name), startedAt);
        if (missed === undefined) continue;
        logger.info({ job: e.spec.name, tick: new Date(missed).toISOString() }, 'running a tick missed while the agent was down');
        void tick(e, 'misfire', missed);
      }
    },
  };
}
