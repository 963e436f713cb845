/** A real runner over a run history whose storage is down (saves wait in memory), with tasks the test ends. */
import { Registry } from 'prom-client';
import { createRunHistory, type RunHistory } from '../../../src/jobs/history.js';
import type { TaskKinds, TaskResult, TaskRunner } from '../../../src/jobs/kinds/kind.js';
import { createRunner, type Runner } from '../../../src/jobs/runner.js';
import type { Storage } from '../../../src/storage/storage.js';
import { silentLogger } from '../../support/temp.js';

/** A task started by the runner and not ended yet. */
export interface StartedTask {
  runId: string;
  params: Record<string, unknown>;
  succeed(): void;
  fail(message: string): void;
}

/** The runner, its history, and the tasks it has started (ended by the test). */
export interface RunsHarness {
  runner: Runner;
  history: RunHistory;
  metrics: Registry;
  /** Tasks started and not ended, oldest first. */
  started: StartedTask[];
}

/** Storage that is never ready, refuses writes and holds no rows: history saves wait in memory. */
const downStorage = { ready: false, transport: { insert: () => Promise.reject(new Error('storage is down')), query: async () => [] } } as unknown as Storage;

export function runsHarness(instance = 'test-agent'): RunsHarness {
  const started: StartedTask[] = [];
  const task: TaskRunner = (params, ctx) =>
    new Promise<TaskResult>((resolve, reject) => {
      const entry: StartedTask = {
        runId: ctx.runId,
        params,
        succeed: () => {
          started.splice(started.indexOf(entry), 1);
          resolve({ message: 'done', result: {} });
        },
        fail: (message) => {
          started.splice(started.indexOf(entry), 1);
          reject(new Error(message));
        },
      };
      started.push(entry);
      ctx.signal.addEventListener('abort', () => started.includes(entry) && started.splice(started.indexOf(entry), 1), { once: true });
    });
  const kinds: TaskKinds = { 'system-check': task, 'http-check': task, retention: task, export: task };
  const logger = silentLogger();
  const history = createRunHistory({ storage: downStorage, logger });
  const metrics = new Registry();
  const pipeline = { consume: async () => undefined };
  const runner = createRunner({ kinds, history, pipeline, instance, logger, metrics });
  return { runner, history, metrics, started };
}

/** Waits until `cond` holds, letting promises and (fake or real) timers of zero delay run. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i += 1) {
    if (cond()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`timed out waiting for ${what}`);
}
