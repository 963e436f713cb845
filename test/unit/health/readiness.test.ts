/** readinessOf alone: which gates count, the shutdown reason first, reasons with and without the component's reason. */
import { describe, expect, it } from 'vitest';
import { readinessOf, type ComponentHealth, type ReadinessGate } from '../../../src/health/registry.js';

const c = (name: string, state: ComponentHealth['state'], gate: ReadinessGate, reason = ''): ComponentHealth => ({ name, state, gate, reason, since: new Date(0) });
const POD = new Set<ReadinessGate>(['pod']);
const STRICT = new Set<ReadinessGate>(['pod', 'strict']);

describe('readinessOf', () => {
  it('is ready with no components, and while every gated component serves (ready or degraded)', () => {
    expect(readinessOf([], POD, false)).toEqual({ ready: true, reasons: [], blocking: [] });
    expect(readinessOf([c('a', 'ready', 'pod'), c('b', 'degraded', 'pod', 'slow')], POD, false).ready).toBe(true);
  });

  it('counts only the components of the gates asked for', () => {
    const components = [c('listeners', 'ready', 'pod'), c('storage', 'failed', 'strict', 'connection refused'), c('extra', 'failed', 'none')];
    expect(readinessOf(components, POD, false)).toEqual({ ready: true, reasons: [], blocking: [] });
    expect(readinessOf(components, STRICT, false)).toEqual({ ready: false, reasons: ['storage: failed (connection refused)'], blocking: ['storage: failed'] });
  });

  it('is never ready while shutting down, and says so first', () => {
    const components = [c('a', 'ready', 'pod'), c('b', 'stopping', 'pod')];
    expect(readinessOf(components, POD, true)).toEqual({ ready: false, reasons: ['agent: shutting down', 'b: stopping'], blocking: ['agent: shutting down', 'b: stopping'] });
  });
});
