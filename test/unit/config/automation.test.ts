import { describe, expect, it } from 'vitest';
import { configErrorOf } from '../../support/config-error.js';
import { matchesEntry } from '../../../src/config/entry-patterns.js';
import { validateConfig } from '../../../src/config/load.js';

const automation = (a: unknown) => () => validateConfig({ ratelimit: { security: { automation: a } } });
const errorOf = configErrorOf;

describe('ratelimit.security.automation', () => {
  it('defaults to nothing automatic, and fills the defaults of honeypots, rules and webhooks', () => {
    expect(validateConfig({}).ratelimit.security.automation).toEqual({ allow: [], honeypots: [], rules: [] });
    const a = automation({
      honeypots: [{ name: 'wp', entries: ['path=/wp-login.php'] }],
      rules: [{ name: 'burst', on: 'refusals', threshold: 500, then: 'elevated', webhook: { url: 'https://hooks.example.com/x' } }],
    })().ratelimit.security.automation;
    expect(a.honeypots[0]).toEqual({ name: 'wp', entries: ['path=/wp-login.php'], block_keys: ['remote_address'], block_ttl: 3_600_000 });
    expect(a.rules[0]).toMatchObject({ min_entities: 1, window: 60_000, quiet: 600_000, block_ttl: 900_000, webhook: { headers: {}, timeout: 5_000, retries: 5, backoff: 1_000 } });
  });

  it('refuses what cannot work, naming the key', () => {
    expect(errorOf(automation({ rules: [{ name: 'r', on: 'refusals', threshold: 1, then: 'block' }] }))).toContain('ratelimit.security.automation.rules[0].then: block needs on: incidents');
    expect(errorOf(automation({ honeypots: [{ name: 'a' }, { name: 'a' }] }))).toContain('ratelimit.security.automation.honeypots[1].name: duplicate name "a"');
    expect(errorOf(automation({ allow: ['remote_address'] }))).toContain('ratelimit.security.automation.allow[0]: expected key=value');
    expect(errorOf(automation({ rules: [{ name: 'r', on: 'refusals', threshold: 1, then: 'elevated', webhook: { url: 'ftp://x' } }] }))).toContain('ratelimit.security.automation.rules[0].webhook.url: expected an http(s) URL');
    expect(errorOf(automation({ rules: [{ name: 'r', on: 'refusals', threshold: 0, then: 'elevated' }] }))).toContain('ratelimit.security.automation.rules[0].threshold');
    expect(errorOf(automation({ honeypots: [{ name: 'x', entries: ['path=/a'], block_ttl: '400d' }] }))).toContain('ratelimit.security.automation.honeypots[0].block_ttl');
    expect(errorOf(automation({ rules: [{ name: 'r', on: 'refusals', threshold: 1, then: 'elevated', extra: 1 }] }))).toContain('ratelimit.security.automation.rules[0].extra: unknown key');
    expect(errorOf(automation({ rules: [{ name: 'r', on: 'refusals', threshold: 1, then: 'elevated', window: '1m', quiet: '30s' }] }))).toContain("ratelimit.security.automation.rules[0].quiet: must be at least the rule's window (60000 ms)");
  });
});

describe('matchesEntry', () => {
  it('matches an exact entry, or a value prefix ending in *', () => {
    const allow = ['remote_address=10.0.0.1', 'user_agent=kube-probe/*'];
    expect(matchesEntry(allow, 'remote_address', '10.0.0.1')).toBe(true);
    expect(matchesEntry(allow, 'remote_address', '10.0.0.10')).toBe(false);
    expect(matchesEntry(allow, 'user_agent', 'kube-probe/1.30')).toBe(true);
    expect(matchesEntry(allow, 'user_agent', 'curl/8')).toBe(false);
    expect(matchesEntry(allow, 'path', '10.0.0.1')).toBe(false);
    // A value may hold "=": the first one splits key from value.
    expect(matchesEntry(['q=a=b'], 'q', 'a=b')).toBe(true);
  });
});
