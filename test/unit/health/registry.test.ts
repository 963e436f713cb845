import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry } from '../../../src/health/registry.js';

describe('health registry', () => {
  it('is ready only while every critical component is ready or degraded', () => {
    let now = 0;
    const r = createHealthRegistry({ now: () => new Date(now) });
    const a = r.register('a');
    const b = r.register('b', { critical: false });
    expect(r.readiness()).toEqual({ ready: false, reasons: ['a: starting'] });
    a.set('ready');
    expect(r.readiness().ready).toBe(true);
    b.set('failed', 'optional thing broke');
    expect(r.readiness().ready).toBe(true);
    a.set('degraded', 'slow');
    expect(r.readiness().ready).toBe(true);
    now = 5_000;
    a.set('failed', 'storage down');
    expect(r.readiness()).toEqual({ ready: false, reasons: ['a: failed (storage down)'] });
    expect(r.component('a')).toMatchObject({ state: 'failed', reason: 'storage down', since: new Date(5_000), critical: true });
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
    expect(r.readiness()).toEqual({ ready: false, reasons: ['agent: shutting down'] });
  });

  it('refuses duplicate names and exports component state as a metric', async () => {
    const metrics = new Registry();
    const r = createHealthRegistry({ metrics });
    r.register('storage').set('failed', 'x');
    expect(() => r.register('storage')).toThrow(/registered twice/);
    const text = await metrics.metrics();
    expect(text).toContain('heimdall_component_state{component="storage",state="failed"} 1');
    expect(text).toContain('heimdall_component_state{component="storage",state="ready"} 0');
  });
});
