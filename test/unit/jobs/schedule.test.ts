import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { currentTick, missedTick, scheduleJob } from '../../../src/jobs/schedule.js';
import { jobSpecSchema, type JobSpec } from '../../../src/jobs/spec.js';

const spec = (over: Record<string, unknown> = {}): JobSpec => jobSpecSchema.parse({ name: 'j', schedule: '*/10 * * * * *', kind: 'system-check', ...over });
const iso = (ms: number) => new Date(ms).toISOString();

describe('schedules with a fake clock', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(new Date('2026-03-28T23:59:55.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('fires on every tick of a seconds schedule and names each tick by its scheduled second', async () => {
    const ticks: string[] = [];
    const cron = scheduleJob(spec(), { onTick: async (t) => void ticks.push(iso(t)), onOverlap: () => undefined, onError: (e) => { throw e; } });
    expect(cron.nextRun()?.toISOString()).toBe('2026-03-29T00:00:00.000Z');
    await vi.advanceTimersByTimeAsync(31_000);
    cron.stop();
    expect(ticks).toEqual(['2026-03-29T00:00:00.000Z', '2026-03-29T00:00:10.000Z', '2026-03-29T00:00:20.000Z']);
  });

  it('reads the schedule in the job\'s time zone, across a daylight-saving change', () => {
    // 02:30 every day in Oslo: on 2026-03-29 clocks jump from 02:00 to 03:00.
    const oslo = scheduleJob(spec({ schedule: '30 2 * * *', time_zone: 'Europe/Oslo' }), { onTick: async () => undefined, onOverlap: () => undefined, onError: () => undefined });
    const runs = oslo.nextRuns(3).map((d) => d.toISOString());
    oslo.stop();
    expect(runs[0]).toBe('2026-03-29T01:30:00.000Z'); // croner moves the missing 02:30 to 03:30 CEST (01:30 UTC)
    expect(runs[1]).toBe('2026-03-30T00:30:00.000Z'); // 02:30 CEST
    const utc = scheduleJob(spec({ schedule: '30 2 * * *' }), { onTick: async () => undefined, onOverlap: () => undefined, onError: () => undefined });
    expect(utc.nextRun()?.toISOString()).toBe('2026-03-29T02:30:00.000Z');
    utc.stop();
    const ny = scheduleJob(spec({ schedule: '0 9 * * 1-5', time_zone: 'America/New_York' }), { onTick: async () => undefined, onOverlap: () => undefined, onError: () => undefined });
    expect(ny.nextRun()?.toISOString()).toBe('2026-03-30T13:00:00.000Z'); // Monday 09:00 EDT
    ny.stop();
  });

  it('forbid: a tick that comes while the previous run goes on is skipped (croner protection); allow runs both', async () => {
    for (const concurrency of ['forbid', 'allow'] as const) {
      const started: string[] = [];
      let overlaps = 0;
      const cron = scheduleJob(spec({ concurrency }), {
        // Each run takes 25 s: two more ticks come while it runs.
        onTick: (t) => {
          started.push(iso(t));
          return new Promise((resolve) => setTimeout(resolve, 25_000));
        },
        onOverlap: () => (overlaps += 1),
        onError: (e) => {
          throw e;
        },
      });
      await vi.advanceTimersByTimeAsync(41_000);
      cron.stop();
      if (concurrency === 'forbid') {
        expect(started).toEqual(['2026-03-29T00:00:00.000Z', '2026-03-29T00:00:30.000Z']);
        expect(overlaps).toBe(2);
      } else {
        expect(started).toHaveLength(4);
        expect(overlaps).toBe(0);
      }
      vi.setSystemTime(new Date('2026-03-28T23:59:55.000Z'));
    }
  });

  it('a paused job does not fire until resumed', async () => {
    const ticks: number[] = [];
    const cron = scheduleJob(spec({ active: false }), { onTick: async (t) => void ticks.push(t), onOverlap: () => undefined, onError: () => undefined });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(ticks).toEqual([]);
    cron.resume();
    await vi.advanceTimersByTimeAsync(10_000);
    cron.stop();
    expect(ticks.map(iso)).toEqual(['2026-03-29T00:00:30.000Z']);
  });

  it('names the tick it fires for even when the timer fires late', () => {
    const cron = scheduleJob(spec(), { onTick: async () => undefined, onOverlap: () => undefined, onError: () => undefined });
    cron.stop();
    expect(iso(currentTick(cron, Date.parse('2026-03-29T00:00:10.003Z')))).toBe('2026-03-29T00:00:10.000Z');
    expect(iso(currentTick(cron, Date.parse('2026-03-29T00:00:10.950Z')))).toBe('2026-03-29T00:00:10.000Z');
    expect(iso(currentTick(cron, Date.parse('2026-03-29T00:00:14.200Z')))).toBe('2026-03-29T00:00:10.000Z');
  });

  it('misfire: finds the newest tick missed while the agent was down, and none when nothing was missed', () => {
    const cron = scheduleJob(spec({ schedule: '0 * * * *' }), { onTick: async () => undefined, onOverlap: () => undefined, onError: () => undefined });
    onTestFinished(() => cron.stop());
    const last = Date.parse('2026-03-29T05:00:00Z');
    // Down from 05:10 to 08:20: ticks 06:00, 07:00 and 08:00 were missed; run-once runs the newest.
    expect(iso(missedTick(cron, last, Date.parse('2026-03-29T08:20:00Z')) ?? 0)).toBe('2026-03-29T08:00:00.000Z');
    // Down from 05:10 to 05:50: nothing missed.
    expect(missedTick(cron, last, Date.parse('2026-03-29T05:50:00Z'))).toBeUndefined();
    // A job that never ran has nothing to catch up.
    expect(missedTick(cron, undefined, Date.parse('2026-03-29T08:20:00Z'))).toBeUndefined();
  });
});
