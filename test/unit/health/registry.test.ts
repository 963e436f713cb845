import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry } from '../../../src/health/registry.js';

describe('health registry', () => {
  it('is ready only while every pod-gating component is ready or degraded', () => {
    let now = 0;
    const r = createHealthRegistry({ now: () => new Date(now) });
    const a = r.register('a');
    const b = r.register('b', { gate: 'none' });
    expect(r.readiness()).toEqual({ ready: false, reasons: ['a: starting'], blocking: ['a: starting'] });
    a.set('ready');
    expect(r.readiness().ready).toBe(true);
    b.set('failed', 'optional thing broke');
    expect(r.readiness().ready).toBe(true);
    a.set('degraded', 'slow');
    expect(r.readiness().ready).toBe(true);
    now = 5_000;
    a.set('failed', 'storage down');
    expect(r.readiness()).toEqual({ ready: false, reasons: ['a: failed (storage down)'], blocking: ['a: failed'] });
    expect(r.component('a')).toMatchObject({ state: 'failed', reason: 'storage down', since: new Date(5_000), gate: 'pod' });
  });

  it('keeps the pod ready through a backend outage; the strict readiness and the overall status show it', () => {
    const r = createHealthRegistry();
    r.register('grpc').set('ready');
    const storage = r.register('storage', { gate: 'strict' });
    const redis = r.register('ratelimit', { gate: 'none' });
    storage.set('ready');
    redis.set('ready');
    expect(r.overall()).toEqual({ status: 'ok', ready: true, strictReady: true, reasons: [], degraded: [] });
    storage.set('failed', 'ClickHouse unreachable');
    redis.set('degraded', 'redis down');
    expect(r.readiness()).toEqual({ ready: true, reasons: [], blocking: [] });
    expect(r.strictReadiness()).toEqual({ ready: false, reasons: ['storage: failed (ClickHouse unreachable)'], blocking: ['storage: failed'] });
    expect(r.overall()).toEqual({
      status: 'degraded',
      ready: true,
      strictReady: false,
      reasons: [],
      degraded: ['storage: failed (ClickHouse unreachable)', 'ratelimit: degraded (redis down)'],
    });
    r.beginShutdown();
    expect(r.overall()).toMatchObject({ status: 'not ready', ready: false, strictReady: false, reasons: ['agent: shutting down'] });
  });

  it('keeps `since` on repeated reports and notifies only on change', () => {
    let now = 0;
    const r = createHealthRegistry({ now: () => new Date(now) });
    const a = r.register('a');
    let changes = 0;
    const off = r.onChange(() => (changes += 1));
    a.set('ready');
    now = 10;
    a.set('ready');
    expect(changes).toBe(1);
    expect(r.component('a')?.since).toEqual(new Date(0));
    a.set('ready', 'note');
    expect(changes).toBe(2);
    expect(r.component('a')?.since).toEqual(new Date(0));
    off();
    a.set('failed');
    expect(changes).toBe(2);
  });

  it('is never ready once shutdown begins', () => {
    const r = createHealthRegistry();
    r.register('a').set('ready');
    r.beginShutdown();
    expect(r.shuttingDown).toBe(true);
    expect(r.readiness()).toEqual({ ready: false, reasons: ['agent: shutting down'], blocking: ['agent: shutting down'] });
  });

  it('refuses duplicate names and exports component state as a metric', async () => {
    const metrics = new Registry();
    const r = createHealthRegistry({ metrics });
    r.register('storage').set('failed', 'x');
    expect(() => r.register('storage')).toThrow(/registered twice/);
    const text = await metrics.metrics();
    expect(text).toContain('heimdall_component_state{component="storage",state="failed"} 1');
    expect(text).toContain('heimdall_component_state{component="storage",state="ready"} 0');
    expect(text).toContain('heimdall_ready{probe="pod"} 0');
  });

  it('storage registered with the strict gate does not turn the pod metric off', async () => {
    const metrics = new Registry();
    const r = createHealthRegistry({ metrics });
    r.register('storage', { gate: 'strict' }).set('failed', 'x');
    const text = await metrics.metrics();
    expect(text).toContain('heimdall_ready{probe="pod"} 1');
    expect(text).toContain('heimdall_ready{probe="strict"} 0');
  });
});
