import { describe, expect, it } from 'vitest';
import type { Conversion } from '../../../src/ingest/otlp/result.js';
import { createEnrichment, DEFAULT_ENRICHMENT_ENV } from '../../../src/ingest/processors/enrichment.js';
import { createRedaction, DEFAULT_KEY_PATTERNS, luhn } from '../../../src/ingest/processors/redaction.js';

const redaction = createRedaction({ keys: DEFAULT_KEY_PATTERNS, values: [], builtins: true, replacement: '[REDACTED]' });
const conversion = (rows: Array<Record<string, unknown>>): Conversion => ({ tables: new Map([['otel_logs', rows]]), accepted: rows.length, rejected: 0, reasons: [] });

describe('redaction', () => {
  it('replaces values of secret keys, judged on the last key segment', () => {
    const attrs: Record<string, string> = {
      'http.request.header.authorization': 'Bearer abc',
      'http.request.header.cookie': 'sid=1',
      'db.password': 'p',
      'client_secret': 's',
      'x-api-key': 'k',
      'aws.access_token': 't',
      'gen_ai.usage.input_tokens': '1234',
      'token.count': '5',
      'user.name': 'ada',
    };
    const c = conversion([{ LogAttributes: attrs }]);
    redaction.process(c);
    expect(c.tables.get('otel_logs')?.[0]?.LogAttributes).toEqual({
      'http.request.header.authorization': '[REDACTED]',
      'http.request.header.cookie': '[REDACTED]',
      'db.password': '[REDACTED]',
      client_secret: '[REDACTED]',
      'x-api-key': '[REDACTED]',
      'aws.access_token': '[REDACTED]',
      'gen_ai.usage.input_tokens': '1234',
      'token.count': '5',
      'user.name': 'ada',
    });
  });

  it('redacts secrets inside text: credentials, JWTs, AWS keys, URL passwords and Luhn-valid card numbers', () => {
    expect(redaction.redactText('call with Authorization: Bearer eyAbc.def-ghi now')).toBe('call with Authorization: Bearer [REDACTED] now');
    expect(redaction.redactText('ran basic health check on bearer service')).toBe('ran basic health check on bearer service');
    expect(redaction.redactText('GET /cb?code=1&access_token=abc.def&x=2')).toBe('GET /cb?code=1&access_token=[REDACTED]&x=2');
    expect(redaction.redactText('jwt eyJhbGciOi.eyJzdWIiOiIx.SflKxwRJSMeKKF2QT4f')).toBe('jwt [REDACTED]');
    expect(redaction.redactText('key AKIAIOSFODNN7EXAMPLE used')).toBe('key [REDACTED] used');
    expect(redaction.redactText('postgres://app:s3cr3t@db:5432/x')).toBe('postgres://app:[REDACTED]@db:5432/x');
    expect(redaction.redactText('card 4111 1111 1111 1111 declined')).toBe('card [REDACTED] declined');
    expect(redaction.redactText('card 4111-1111-1111-1112 is not valid')).toBe('card 4111-1111-1111-1112 is not valid');
    expect(redaction.redactText('order 1700000000000123 at 2026-11-22')).toBe('order 1700000000000123 at 2026-11-22');
    // Epoch milliseconds and nanoseconds, and snowflake ids, start with 1: no card issuer does.
    expect(redaction.redactText('ts=1763788800000 ns=1763788800000000018 id=1234567890123456789')).toBe('ts=1763788800000 ns=1763788800000000018 id=1234567890123456789');
    expect(luhn('4111111111111111')).toBe(true);
    expect(luhn('4111111111111112')).toBe(false);
  });

  it('covers log bodies, event and link attributes; refuses invalid patterns', () => {
    const c = conversion([{ Body: 'password reset for postgres://u:pw123456@h/db', 'Events.Attributes': [{ token: 'x' }], 'Links.Attributes': [{ ok: 'fine value' }] }]);
    redaction.process(c);
    const row = c.tables.get('otel_logs')?.[0];
    expect(row?.Body).toBe('password reset for postgres://u:[REDACTED]@h/db');
    expect(row?.['Events.Attributes']).toEqual([{ token: '[REDACTED]' }]);
    expect(row?.['Links.Attributes']).toEqual([{ ok: 'fine value' }]);
    expect(() => createRedaction({ keys: ['(oops'], values: [], builtins: false, replacement: 'x' })).toThrow('invalid redaction pattern "(oops"');
    expect(() => createRedaction({ keys: [], values: ['[z-a]'], builtins: false, replacement: 'x' })).toThrow('invalid redaction pattern "[z-a]"');
    const custom = createRedaction({ keys: [], values: ['\\bEMP-\\d{6}\\b'], builtins: false, replacement: '<x>' });
    expect(custom.redactText('employee EMP-123456 left')).toBe('employee <x> left');
  });

  it('covers span names, service names and status messages (they become metric labels and search results)', () => {
    const c: Conversion = {
      tables: new Map([['otel_traces', [{ SpanName: 'GET /cb?code=1&access_token=abcdef123456', ServiceName: 'svc postgres://app:s3cr3t@db', StatusMessage: 'upstream said Bearer abcdefghijklmnop', SpanAttributes: {} }]]]),
      accepted: 1,
      rejected: 0,
      reasons: [],
    };
    redaction.process(c);
    expect(c.tables.get('otel_traces')?.[0]).toMatchObject({
      SpanName: 'GET /cb?code=1&access_token=[REDACTED]',
      ServiceName: 'svc postgres://app:[REDACTED]@db',
      StatusMessage: 'upstream said Bearer [REDACTED]',
    });
  });
});

describe('redaction memo', () => {
  it('answers a repeated text as the first time, past the memo\'s size too, and texts too long for it alike', () => {
    const memoized = createRedaction({ keys: DEFAULT_KEY_PATTERNS, values: ['internal-\\d+'], builtins: true, replacement: '[X]' });
    const texts = Array.from({ length: 20_000 }, (_, i) =>
      i % 3 === 0 ? `Authorization: Bearer abcdefghijklmnop${i}` : i % 3 === 1 ? `GET /api/internal-${i}?token=secret${i}` : `plain text number ${i % 500} ${'y'.repeat(i % 300)}`,
    );
    // redactText is the search itself, never remembered.
    const expected = new Map(texts.map((t) => [t, memoized.redactText(t)]));
    // Each text three times, spread out, so that the memo starts over several times in between.
    for (const t of [...texts, ...texts.slice().reverse(), ...texts]) expect(memoized.redactFreeText(t)).toBe(expected.get(t));
    expect(memoized.redactFreeText('GET /api/internal-7')).toBe('GET /api/[X]');
    expect(memoized.redactAttribute('db.password', 'GET /api/internal-7')).toBe('[X]');
  });
});

describe('redaction performance', () => {
  it('stays linear on hostile values (no catastrophic backtracking)', () => {
    // Linear: about 0.1 s each on an idle machine. Backtracking on values this long takes minutes,
    // so the bound is far from both; the fastest of three runs, so that a busy machine's pauses do not count.
    const hostile = ['eyJ-'.repeat(250_000), `http://${'a:'.repeat(200_000)}`, `Bearer ${'x'.repeat(500_000)}`, `${'1 '.repeat(300_000)}`, `?${'token='.repeat(100_000)}`];
    for (const value of hostile) {
      const fastest = Math.min(
        ...[1, 2, 3].map(() => {
          const t0 = performance.now();
          redaction.redactText(value);
          return performance.now() - t0;
        }),
      );
      expect(fastest, value.slice(0, 12)).toBeLessThan(10_000);
    }
  });
});

describe('enrichment', () => {
  it('adds Kubernetes attributes from the environment when absent, keeping keys sorted and values given', () => {
    const e = createEnrichment(DEFAULT_ENRICHMENT_ENV, { K8S_POD_NAME: 'web-1', K8S_NAMESPACE_NAME: 'shop', K8S_NODE_NAME: '' });
    expect(e.attributes).toEqual({ 'k8s.pod.name': 'web-1', 'k8s.namespace.name': 'shop' });
    const shared = { 'service.name': 'web', 'k8s.pod.name': 'given' };
    const c = conversion([{ ResourceAttributes: shared }, { ResourceAttributes: shared }]);
    e.process(c);
    const map = c.tables.get('otel_logs')?.[0]?.ResourceAttributes as Record<string, string>;
    expect(Object.keys(map)).toEqual(['k8s.namespace.name', 'k8s.pod.name', 'service.name']);
    expect(map['k8s.pod.name']).toBe('given');
  });
});
