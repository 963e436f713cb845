/** Run history on embedded storage: the last scheduled tick of each job, as the misfire check reads it. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRunHistory, type RunRecord } from '../../../src/jobs/history.js';
import { startEmbeddedStorage, type TestStorage } from '../../support/embedded-storage.js';
import { silentLogger } from '../../support/temp.js';

let store: TestStorage;
beforeAll(async () => {
  store = await startEmbeddedStorage();
}, 120_000);
afterAll(() => store.stop(), 60_000);

const T0 = Date.UTC(2026, 11, 2, 10, 0, 0);

/** An ended run of `jobName` for the tick at `scheduledTime`. */
const run = (id: string, jobName: string, trigger: RunRecord['trigger'], scheduledTime: number): RunRecord => ({
  id,
  jobName,
  kind: 'http-check',
  params: {},
  timeoutMs: 1_000,
  attempts: 1,
  backoffMs: 0,
  trigger,
  status: 'succeeded',
  attempt: 1,
  progress: 1,
  message: '',
  error: '',
  result: {},
  correlationId: `job:${jobName}`,
  instance: 'test',
  fence: 0,
  scheduledTime,
  createdAt: scheduledTime,
  startedAt: scheduledTime,
  endedAt: scheduledTime + 10,
});

describe('run history: lastTicks', () => {
  it('gives each job its newest schedule or misfire tick before the given time, so ticks run after an agent started do not hide the one it missed', async () => {
    const history = createRunHistory({ storage: store.storage, logger: silentLogger() });
    history.save(run('01a00000-0000-7000-8000-000000000001', 'every-2s', 'schedule', T0));
    history.save(run('01a00000-0000-7000-8000-000000000002', 'every-2s', 'misfire', T0 + 2_000));
    // The agent came back at T0 + 9 s: its own first tick after the restart.
    history.save(run('01a00000-0000-7000-8000-000000000003', 'every-2s', 'schedule', T0 + 10_000));
    history.save(run('01a00000-0000-7000-8000-000000000004', 'every-2s', 'manual', T0 + 4_000));
    history.save(run('01a00000-0000-7000-8000-000000000005', 'nightly', 'schedule', T0 - 86_400_000));
    const before = await history.lastTicks(T0 + 9_000);
    expect(Object.fromEntries(before)).toEqual({ 'every-2s': T0 + 2_000, nightly: T0 - 86_400_000 });
    expect((await history.lastTicks(T0 + 60_000)).get('every-2s')).toBe(T0 + 10_000);
  }, 60_000);
});
