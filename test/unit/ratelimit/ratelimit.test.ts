import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { prng } from '../../support/prng.js';
import { RateLimitDescriptorSchema } from '../../../src/gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js';
import { fullBucket, take } from '../../../src/ratelimit/bucket.js';
import { parseDomainFile, RateLimitConfigError } from '../../../src/ratelimit/config.js';
import { matchLimit } from '../../../src/ratelimit/decide.js';
import { encodeRateLimitResponse, type WireResponse } from '../../../src/ratelimit/wire.js';
import { RateLimitResponseSchema } from '../../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';


describe('token bucket', () => {
  it('never admits more than burst + rate x elapsed, over any window (fake clock, random traffic)', () => {
    const rnd = prng(42);
    for (let run = 0; run < 60; run++) {
      const spec = { capacity: 1 + Math.floor(rnd() * 50), ratePerMs: rnd() * 0.05 };
      let now = 1_000;
      const state = fullBucket(spec, now);
      const admitted: Array<{ at: number; hits: number }> = [];
      for (let i = 0; i < 500; i++) {
        now += Math.floor(rnd() * 40);
        const hits = Math.floor(rnd() * 4);
        const d = take(state, spec, hits, now);
        if (d.allowed && hits > 0) admitted.push({ at: now, hits });
        expect(d.remaining).toBeLessThanOrEqual(spec.capacity);
      }
      // Every window [a, b] admits at most capacity + rate * (b - a).
      for (let a = 0; a < admitted.length; a += 7) {
        let sum = 0;
        for (let b = a; b < admitted.length; b++) {
          sum += admitted[b]?.hits ?? 0;
          const span = (admitted[b]?.at ?? 0) - (admitted[a]?.at ?? 0);
          expect(sum).toBeLessThanOrEqual(spec.capacity + spec.ratePerMs * span + 1e-9);
        }
      }
    }
  });

  it('refills continuously, refuses more than capacity, and checks without taking for 0 hits', () => {
    const spec = { capacity: 10, ratePerMs: 10 / 1000 }; // 10 per second
    const s = fullBucket(spec, 0);
    expect(take(s, spec, 11, 0).allowed).toBe(false);
    expect(take(s, spec, 10, 0)).toEqual({ allowed: true, remaining: 0, resetMs: 1000, retryMs: 0 });
    expect(take(s, spec, 0, 0).allowed).toBe(false);
    expect(take(s, spec, 1, 50).allowed).toBe(false); // half a token
    expect(take(s, spec, 1, 100)).toMatchObject({ allowed: true, remaining: 0 });
    expect(take(s, spec, 0, 400)).toMatchObject({ allowed: true, remaining: 3 });
    expect(take(s, spec, 1, 10_000)).toMatchObject({ allowed: true, remaining: 9, resetMs: 100 });
    const blocked = { capacity: 0, ratePerMs: 0 };
    expect(take(fullBucket(blocked, 0), blocked, 1, 5).allowed).toBe(false);
  });

  it('says when a refused request could pass (its hits back), apart from when the bucket is full', () => {
    const spec = { capacity: 5, ratePerMs: 5 / 60_000 }; // 5 a minute: a token every 12 s
    const s = fullBucket(spec, 0);
    expect(take(s, spec, 5, 0)).toEqual({ allowed: true, remaining: 0, resetMs: 60_000, retryMs: 0 });
    expect(take(s, spec, 1, 0)).toEqual({ allowed: false, remaining: 0, resetMs: 60_000, retryMs: 12_000 });
    // Half a token back after 6 s: 3 hits need 2.5 more (30 s), a full bucket 4.5 more (54 s).
    expect(take(s, spec, 3, 6_000)).toEqual({ allowed: false, remaining: 0, resetMs: 54_000, retryMs: 30_000 });
    expect(take(s, spec, 0, 6_000)).toEqual({ allowed: false, remaining: 0, resetMs: 54_000, retryMs: 6_000 });
    expect(take(s, spec, 6, 6_000)).toEqual({ allowed: false, remaining: 0, resetMs: 54_000, retryMs: Number.POSITIVE_INFINITY });
    const blocked = { capacity: 0, ratePerMs: 0 };
    expect(take(fullBucket(blocked, 0), blocked, 1, 5)).toEqual({ allowed: false, remaining: 0, resetMs: 0, retryMs: Number.POSITIVE_INFINITY });
  });
});

// Matching rules on a configuration like envoyproxy/ratelimit's README examples (which the
// conformance test runs as they are).
const NESTED = `
domain: messaging
descriptors:
  - key: message_type
    value: marketing
    descriptors:
      - key: to_number
        rate_limit:
          unit: day
          requests_per_unit: 5
  - key: to_number
    rate_limit:
      unit: day
      requests_per_unit: 100
  - key: remote_address
    rate_limit:
      requests_per_unit: 0
      unit: second
  - key: foo
    value: "bar*"
    rate_limit:
      unit: minute
      requests_per_unit: 20
  - key: foo
    rate_limit:
      unit: minute
      requests_per_unit: 10
  - key: key1
    value: value1
    rate_limit:
      unlimited: true
`;

const desc = (...entries: Array<[string, string]>) => create(RateLimitDescriptorSchema, { entries: entries.map(([key, value]) => ({ key, value })) });

describe('rate-limit configuration and matching', () => {
  it('matches key_value before wildcards before key-only defaults, and needs the depth to match', () => {
    const { domain, root } = parseDomainFile('messaging.yaml', NESTED);
    expect(domain).toBe('messaging');
    expect(matchLimit(root, desc(['message_type', 'marketing'], ['to_number', '2061234567']))).toMatchObject({ unit: 'day', requestsPerUnit: 5 });
    expect(matchLimit(root, desc(['to_number', '2061234567']))).toMatchObject({ requestsPerUnit: 100 });
    // Depth must match: the marketing node itself has no limit.
    expect(matchLimit(root, desc(['message_type', 'marketing']))).toBeUndefined();
    expect(matchLimit(root, desc(['message_type', 'other'], ['to_number', '1']))).toBeUndefined();
    expect(matchLimit(root, desc(['foo', 'barbaz']))).toMatchObject({ unit: 'minute', requestsPerUnit: 20 });
    expect(matchLimit(root, desc(['foo', 'ba']))).toMatchObject({ requestsPerUnit: 10 });
    expect(matchLimit(root, desc(['remote_address', '10.0.0.1']))).toMatchObject({ requestsPerUnit: 0, capacity: 0 });
    expect(matchLimit(root, desc(['key1', 'value1']))).toMatchObject({ unlimited: true });
    expect(matchLimit(root, desc(['unknown', 'x']))).toBeUndefined();
  });

  it('takes the Heimdall extensions (burst, backend) and the upstream fields (name, replaces, shadow_mode, detailed_metric)', () => {
    const { root } = parseDomainFile(
      'x.yaml',
      `
domain: d
descriptors:
  - key: k
    shadow_mode: true
    detailed_metric: true
    rate_limit: { unit: minute, requests_per_unit: 60, burst: 120, backend: local, name: per-k, replaces: [{ name: other }] }
`,
    );
    expect(matchLimit(root, desc(['k', 'v']))).toMatchObject({ capacity: 120, requestsPerUnit: 60, name: 'per-k', replaces: ['other'], shadowMode: true, detailedMetric: true, backend: 'local' });
  });

  it('names the file, line and reason of an invalid file', () => {
    const bad = (text: string) => {
      try {
        parseDomainFile('limits.yaml', text);
      } catch (err) {
        if (err instanceof RateLimitConfigError) return [err.file, err.line, err.reason];
        throw err;
      }
      throw new Error('expected an error');
    };
    expect(bad('domain: d\ndescriptors:\n  - key: a\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n')).toEqual(['limits.yaml', 4, expect.stringContaining('descriptors.0.rate_limit.unit')]);
    expect(bad('domain: d\ndescriptors:\n  - key: a\n    colour: red\n')).toEqual(['limits.yaml', 3, expect.stringContaining('colour')]);
    expect(bad('domain: d\ndescriptors:\n  - key: a\n    rate_limit: { unit: second }\n')).toEqual(['limits.yaml', undefined, expect.stringContaining('needs unit and requests_per_unit')]);
    expect(bad('domain: [\n')[0]).toBe('limits.yaml');
    expect(bad('descriptors: []\n')).toEqual(['limits.yaml', 1, expect.stringContaining('domain')]);
  });

  it('a descriptor marked honeypot: <name> must name a configured honeypot (file:line, the configured names)', () => {
    const text = 'domain: d\ndescriptors:\n  - key: a\n    descriptors:\n      - key: path\n        value: /wp-admin\n        honeypot: wordpres\n';
    const reason = (known: string[]) => {
      try {
        parseDomainFile('limits.yaml', text, new Set(known));
      } catch (err) {
        if (err instanceof RateLimitConfigError) return err.message;
        throw err;
      }
      return 'loaded';
    };
    expect(reason(['wordpress', 'env'])).toBe('limits.yaml:7: descriptors.0.descriptors.0.honeypot: unknown honeypot "wordpres" (ratelimit.security.automation.honeypots; configured: wordpress, env)');
    expect(reason([])).toBe('limits.yaml:7: descriptors.0.descriptors.0.honeypot: unknown honeypot "wordpres" (ratelimit.security.automation.honeypots; none is configured)');
    expect(reason(['wordpres'])).toBe('loaded');
    expect(parseDomainFile('limits.yaml', text, new Set(['wordpres'])).root.children.get('a')?.children.get('path_/wp-admin')?.honeypot).toBe('wordpres');
  });
});

describe('RateLimitResponse encoder', () => {
  it('decodes to the same message as @bufbuild toBinary, for random responses', () => {
    const rnd = prng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    for (let n = 0; n < 500; n++) {
      const response: WireResponse = {
        overallCode: pick([0, 1, 2]),
        statuses: Array.from({ length: Math.floor(rnd() * 4) }, () => ({
          code: pick([0, 1, 2]),
          ...(rnd() < 0.7 ? { currentLimit: { requestsPerUnit: pick([0, 1, 127, 128, 300, 4_294_967_295]), unit: pick([0, 1, 2, 7]), ...(rnd() < 0.5 ? { name: pick(['', 'per-ip', 'ünïcødé', 'x'.repeat(300)]) } : {}) } } : {}),
          limitRemaining: pick([0, 1, 200, 4_294_967_295]),
          ...(rnd() < 0.7 ? { durationUntilReset: { seconds: BigInt(pick([0, 1, 59, 31_536_000])), nanos: pick([0, 1, 999_999_999]) } } : {}),
        })),
        responseHeadersToAdd: Array.from({ length: Math.floor(rnd() * 3) }, () => ({ key: pick(['RateLimit', 'RateLimit-Policy']), value: pick(['', '"a";r=1;t=2', 'y'.repeat(200)]) })),
      };
      const ours = fromBinary(RateLimitResponseSchema, encodeRateLimitResponse(response));
      const theirs = fromBinary(RateLimitResponseSchema, toBinary(RateLimitResponseSchema, create(RateLimitResponseSchema, response as never)));
      expect(ours).toEqual(theirs);
    }
  });
});
