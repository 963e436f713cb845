/** The worker's signals for automation rules: refusals over a limit and incidents, counted by the over-limit reporter, bounded, handed on only when any. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { createOverLimitReporter } from '../../../src/ratelimit/over-limit.js';
import { createSignalCollector, MAX_SIGNAL_ENTITIES, MAX_SIGNAL_INCIDENTS, type SecuritySignals } from '../../../src/ratelimit/signals.js';

const config = validateConfig({ ratelimit: { over_limit_max_keys: 3 } }).ratelimit;
const ip = (value: string) => [{ key: 'remote_address', value }];

/** A reporter over a collector whose flushes land in `got`. */
function reporter(incidentThreshold = 5) {
  const got: SecuritySignals[] = [];
  const signals = createSignalCollector({ sink: (s) => got.push(s) });
  const overLimit = createOverLimitReporter({ config, incidentThreshold, sink: () => undefined, signals, metrics: new Registry() });
  return { got, signals, overLimit };
}

describe('security signals', () => {
  it('counts refusals over a limit with their distinct entities, and hands nothing on when there is nothing', () => {
    const { got, signals, overLimit } = reporter();
    signals.flush();
    expect(got).toEqual([]);
    overLimit.record('edge', 'edge.remote_address', ip('192.0.2.1'), 1);
    overLimit.record('edge', 'edge.remote_address', ip('192.0.2.1'), 1);
    overLimit.record('edge', 'edge.remote_address', ip('192.0.2.2'), 1);
    signals.flush();
    expect(got).toEqual([{ refusals: 3, entities: ['remote_address=192.0.2.1', 'remote_address=192.0.2.2'], incidents: [] }]);
  });

  it('leaves out refusals by the security layer (blocks, lockdown, traps) and the overflow key', () => {
    const { got, signals, overLimit } = reporter(1);
    overLimit.record('edge', 'security:blocked', ip('192.0.2.1'), 100);
    overLimit.record('edge', 'security:lockdown', ip('192.0.2.2'), 100);
    for (const a of ['a', 'b', 'c', 'd', 'e']) overLimit.record('edge', 'edge.user', [{ key: 'user', value: a }], 1);
    signals.flush();
    // over_limit_max_keys 3 (two taken by the security records): one key counted, d and e overflow.
    expect(got[0]?.refusals).toBe(1);
    expect(got[0]?.incidents.map((i) => i.entity)).toEqual(['user=a']);
  });

  it('reports an incident once per key and window, at the hit that crosses incident_threshold, with its entries', () => {
    const { got, signals, overLimit } = reporter(5);
    const entries = [...ip('192.0.2.9'), { key: 'path', value: '/login' }];
    overLimit.record('edge', 'edge.remote_address_path', entries, 4);
    overLimit.record('edge', 'edge.remote_address_path', entries, 1);
    overLimit.record('edge', 'edge.remote_address_path', entries, 50);
    signals.flush();
    expect(got[0]?.incidents).toEqual([{ domain: 'edge', descriptor: 'edge.remote_address_path', entity: 'remote_address=192.0.2.9,path=/login', entries }]);
    overLimit.flush(); // a new over-limit window
    overLimit.record('edge', 'edge.remote_address_path', entries, 5);
    signals.flush();
    expect(got[1]?.incidents).toHaveLength(1);
  });

  it('keeps at most 1,000 entities and 1,000 incidents per tick', () => {
    const got: SecuritySignals[] = [];
    const signals = createSignalCollector({ sink: (s) => got.push(s) });
    for (let i = 0; i < 3_000; i++) {
      signals.refused(`remote_address=${i}`);
      signals.incident({ domain: 'd', descriptor: 'x', entity: `remote_address=${i}`, entries: [] });
    }
    signals.shutdown();
    expect(got[0]?.refusals).toBe(3_000);
    expect(got[0]?.entities).toHaveLength(MAX_SIGNAL_ENTITIES);
    expect(got[0]?.incidents).toHaveLength(MAX_SIGNAL_INCIDENTS);
  });
});
