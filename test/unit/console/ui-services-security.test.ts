/** The services and security views' DOM-free units (ui/red.ts, ui/security-view.ts): totals, chart data, formats, actions. */
import { describe, expect, it } from 'vitest';
import type { Action } from '../../../ui/api/security-types.js';
import { chartData, formatMs, formatPercent, formatRate, redTotals, seriesOf, windowSeconds } from '../../../ui/red.js';
import { actionState, describeChange, modeName, sortActions } from '../../../ui/security-view.js';

describe('RED series', () => {
  const res = {
    startTime: '2026-01-01T00:00:00Z',
    endTime: '2026-01-01T00:10:00Z',
    bucketTimes: ['2026-01-01T00:00:00Z', '2026-01-01T00:05:00Z'],
    series: [
      { serviceName: 'checkout', requests: ['40', '20'], errors: ['4', '2'], rate: [0.13, 0.07], errorRate: [0.1, 0.1], p50Ms: [3, 4], p95Ms: [12, 30], p99Ms: [20, 50] },
      { serviceName: 'checkout', spanName: 'POST /pay', requests: ['0', '5'], errors: ['0', '0'], p95Ms: [99, 7] },
    ],
  };

  it('sums a series over the window: requests, errors, rate per second, error rate, the peak p95 of buckets with requests', () => {
    expect(windowSeconds(res)).toBe(600);
    expect(redTotals(seriesOf(res, 'checkout'), 600)).toEqual({ requests: 60, errors: 6, rate: 0.1, errorRate: 0.1, p95PeakMs: 30 });
    // A bucket without requests has no p95 to count (the server sends 0 there; here 99 proves it is skipped).
    expect(redTotals(seriesOf(res, 'checkout', 'POST /pay'), 600).p95PeakMs).toBe(7);
    expect(redTotals(undefined, 600)).toEqual({ requests: 0, errors: 0, rate: 0, errorRate: 0, p95PeakMs: 0 });
    expect(seriesOf(res, 'checkout', 'GET /')).toBeUndefined();
    expect(windowSeconds({})).toBe(1);
  });

  it('aligns chart rows on the bucket times (Unix seconds), error rates as percentages, zeros where a series has none', () => {
    const t0 = Date.parse('2026-01-01T00:00:00Z') / 1000;
    expect(chartData(res, seriesOf(res, 'checkout'), ['rate', 'errorRate'])).toEqual([[t0, t0 + 300], [0.13, 0.07], [10, 10]]);
    expect(chartData(res, undefined, ['p99Ms'])).toEqual([[t0, t0 + 300], [0, 0]]);
    expect(chartData({}, undefined, ['rate'])).toEqual([[], []]);
  });

  it('formats rates, shares and durations', () => {
    expect([0, 0.0123, 0.5, 12.34].map(formatRate)).toEqual(['0/s', '0.012/s', '0.50/s', '12.3/s']);
    expect([0, 0.0004, 0.125, 1].map(formatPercent)).toEqual(['0%', '0.04%', '12.5%', '100.0%']);
    expect([0.25, 4.5, 123.45, 2500].map(formatMs)).toEqual(['250 µs', '4.50 ms', '123.5 ms', '2.50 s']);
  });
});

describe('security actions', () => {
  const action = (id: string, state: string, createdAt: string, change: Partial<Action> = { setMode: { mode: 'SECURITY_MODE_LOCKDOWN' } }): Action => ({ id, state: `ACTION_STATE_${state}`, createdAt, ...change });

  it('names modes, states and changes as the view shows them', () => {
    expect(modeName('SECURITY_MODE_LOCKDOWN')).toBe('lockdown');
    expect(modeName(undefined)).toBe('unspecified');
    expect(actionState(action('a', 'PENDING', ''))).toBe('pending');
    expect(describeChange(action('a', 'PENDING', ''))).toBe('set mode lockdown');
    expect(describeChange({ block: { entity: 'remote_address=192.0.2.1', durationSeconds: 3600 } })).toBe('block remote_address=192.0.2.1 for 1h');
    expect(describeChange({ block: { entity: 'user=bob' } })).toBe('block user=bob until unblocked');
    expect(describeChange({ unblock: { entity: 'user=bob' } })).toBe('unblock user=bob');
    expect(describeChange({})).toBe('unknown change');
  });

  it('lists pending actions first, oldest first, then the others newest first', () => {
    const list = [
      action('done-old', 'EXECUTED', '2026-01-01T00:00:00Z'),
      action('pending-new', 'PENDING', '2026-01-01T00:03:00Z'),
      action('done-new', 'REJECTED', '2026-01-01T00:04:00Z'),
      action('pending-old', 'PENDING', '2026-01-01T00:01:00Z'),
    ];
    expect(sortActions(list).map((a) => a.id)).toEqual(['pending-old', 'pending-new', 'done-new', 'done-old']);
  });
});
