import type { Logger } from '../telemetry/logger.js';
import { isTerminal, type RunHistory, type RunRecord } from './history.js';
import type { Entry } from './job-table.js';
import type { KindName } from './kinds/params.js';
import type { Leases } from './lease.js';
import type { LiveRun, Runner } from './runner.js';

/** Another agent's unfinished run not saved for this long is taken as interrupted. */
export const STALE_MS = 60_000;

/** Options for createRecovery. */
export interface RecoveryOptions {
  history: Pick<RunHistory, 'unfinished' | 'get' | 'flush' | 'failedAt'>;
  runner: Pick<Runner, 'live' | 'adopt' | 'finish' | 'create'>;
  /** This agent's name in run records. */
  instance: string;
  /** Storage other agents may share: their runs are only retried under a Redis claim. */
  sharedStorage: boolean;
  leases: Pick<Leases, 'claimRun'> | undefined;
  /** The scheduled job of a name, if any. */
  entry(name: string): Entry | undefined;
  /** Retries an interrupted run of a scheduled job (see ScheduledRuns.retry). */
  retry(e: Entry, r: RunRecord): Promise<void>;
  /** Queues an on-demand run. */
  enqueue(live: LiveRun): void;
  logger: Logger;
}

/** Takes over runs left unfinished by an agent that stopped or went away. */
export interface Recovery {
  /**
   * Takes over unfinished runs created at or after `since` (ms): this instance's (the agent stopped
   * under them) and, once storage has taken writes for STALE_MS (always on storage of its own), other
   * instances' that stopped heartbeating. A queued on-demand job that never started goes back in the
   * queue as it was; a run that started is failed (`interrupted`) and retried per its policy. On
   * shared storage with Redis, one agent claims each run; on shared storage without Redis, another
   * instance's run is only marked failed. One sweep at a time: a call during one joins it.
   */
  sweep(since: number): Promise<void>;
  /** Storage is not taking writes now: other agents' silence proves nothing until it has for STALE_MS. */
  storageDown(): void;
  /** Resolves when no sweep is going on. Never rejects. */
  settled(): Promise<void>;
}

/** Creates it. Owns the sweep in flight and since when storage has taken writes. */
export function createRecovery(options: RecoveryOptions): Recovery {
  const { history, runner, instance, logger } = options;
  let storageOkSince = Date.now();
  let sweeping: Promise<void> | undefined;
  const foreign = (): boolean => !options.sharedStorage || Date.now() - Math.max(storageOkSince, history.failedAt) >= STALE_MS;

  const recover = async (r: RunRecord): Promise<void> => {
    // Ended or taken in hand here since the query read it (history.get sees states not yet stored).
    const now = runner.live(r.id) ? undefined : await history.get(r.id);
    if (!now || isTerminal(now.status) || runner.live(r.id)) return;
    const mine = r.instance === instance;
    let retry = mine || !options.sharedStorage;
    if (options.sharedStorage && options.leases) {
      retry = await options.leases.claimRun(r.id, r.version ?? 0).catch(() => false);
      if (!retry) return; // another agent recovers it (or Redis answers at the next sweep)
    }
    if (retry && r.status === 'pending' && !r.jobName) {
      logger.info({ run: r.id, kind: r.kind, from: r.instance }, 'queued job taken back: it never started');
      return options.enqueue(runner.adopt(r));
    }
    runner.finish(runner.adopt(r), 'failed', `interrupted: ${mine ? 'the agent stopped while it ran' : `its agent ${r.instance} went away (no heartbeat for ${STALE_MS / 1000} s)`}`);
    if (!retry || r.attempt >= r.attempts) return;
    if (!r.jobName) {
      logger.info({ run: r.id, job: r.jobName, kind: r.kind, attempt: r.attempt + 1 }, 'retrying an interrupted run');
      return options.enqueue(runner.create({ jobName: '', kind: r.kind as KindName, params: r.params, timeoutMs: r.timeoutMs, attempts: r.attempts, backoffMs: r.backoffMs, trigger: 'retry', correlationId: r.correlationId, attempt: r.attempt + 1 }));
    }
    const e = options.entry(r.jobName);
    // A scheduled job's retry only while it is scheduled and active; another pod's pod-scoped job is that pod's.
    if (!e || !e.spec.active || (!mine && e.spec.scope === 'pod')) return;
    await options.retry(e, r);
  };

  const run = async (since: number): Promise<void> => {
    const candidates = await history.unfinished(instance, foreign() ? Date.now() - STALE_MS : 0, since);
    for (const r of candidates) await recover(r);
    if (candidates.length > 0) await history.flush().catch(() => undefined);
  };

  return {
    sweep: (since) => (sweeping ??= run(since).finally(() => (sweeping = undefined))),
    storageDown() {
      storageOkSince = Date.now();
    },
    settled: async () => {
      await sweeping?.catch(() => undefined);
    },
  };
}
