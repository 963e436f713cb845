/** Which request descriptors spring a trap: a honeypot's config entries (all in one descriptor), or a limits-file descriptor marked `honeypot:`. */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { parseDomainFile } from '../../../src/ratelimit/config.js';
import { createHoneypotTraps } from '../../../src/ratelimit/honeypot-traps.js';

const honeypots = (list: unknown[]) => validateConfig({ ratelimit: { security: { automation: { honeypots: list } } } }).ratelimit.security.automation.honeypots;
const d = (...pairs: Array<[string, string]>) => ({ entries: pairs.map(([key, value]) => ({ key, value })) });

const LIMITS = `domain: edge
descriptors:
  - key: path
    value: /wp-admin*
    honeypot: wordpress
  - key: path
    value: /api
    rate_limit: { unit: second, requests_per_unit: 10 }
    descriptors:
      - key: method
        value: TRACE
        honeypot: tracer
        rate_limit: { unit: second, requests_per_unit: 10 }
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 10 }
`;

describe('honeypot traps', () => {
  it('none configured: no traps at all (the check pays nothing)', () => {
    expect(createHoneypotTraps(honeypots([]))).toBeUndefined();
  });

  it('config entries: a descriptor holding all of them (a value ending in * is a prefix) is a hit; one of them is not', () => {
    const traps = createHoneypotTraps(honeypots([{ name: 'env', entries: ['path=/.env*', 'method=GET'] }, { name: 'admin', entries: ['path=/admin'] }]))!;
    expect(traps.match(undefined, d(['method', 'GET'], ['path', '/.env.local']))?.name).toBe('env');
    expect(traps.match(undefined, d(['path', '/.env']))).toBeUndefined();
    expect(traps.match(undefined, d(['path', '/admin'], ['remote_address', '1.2.3.4']))?.name).toBe('admin');
    expect(traps.match(undefined, d(['path', '/admin/x']))).toBeUndefined();
    expect(traps.match(undefined, d(['path', '/ok'], ['method', 'GET']))).toBeUndefined();
  });

  it('limits-file traps: matched as limits are (exact, wildcard, nested, depth), with or without a rate_limit', () => {
    const traps = createHoneypotTraps(honeypots([{ name: 'wordpress' }, { name: 'tracer' }]))!;
    const { root } = parseDomainFile('edge.yaml', LIMITS, new Set(['wordpress', 'tracer']));
    expect(traps.match(root, d(['path', '/wp-admin/setup.php']))?.name).toBe('wordpress');
    expect(traps.match(root, d(['path', '/api'], ['method', 'TRACE']))?.name).toBe('tracer');
    expect(traps.match(root, d(['path', '/api']))).toBeUndefined(); // the parent is not a trap
    expect(traps.match(root, d(['path', '/api'], ['method', 'GET']))).toBeUndefined();
    expect(traps.match(root, d(['path', '/wp-admin'], ['extra', 'x']))).toBeUndefined(); // deeper than the trap
    expect(traps.match(root, d(['remote_address', '1.2.3.4']))).toBeUndefined();
    // A tree without traps: nothing matches (and it is walked once).
    const plain = parseDomainFile('api.yaml', 'domain: api\ndescriptors:\n  - key: path\n    value: /wp-admin\n    rate_limit: { unit: second, requests_per_unit: 1 }\n').root;
    expect(traps.match(plain, d(['path', '/wp-admin']))).toBeUndefined();
  });
});
