/** The wire text cache: the text of any byte range, same string on a hit, non-ASCII and long texts left to the caller, bounded slots in pairs. */
import { describe, expect, it } from 'vitest';
import { createWireText } from '../../../src/ingest/otlp/wire-text.js';
import { prng } from '../../support/prng.js';

describe('wire text cache', () => {
  it('returns the text of the bytes, the same string again on a hit', () => {
    const cache = createWireText({ slots: 16, maxBytes: 32 });
    const buf = Buffer.from('xxhttp.methodyyhttp.method');
    const first = cache.ascii(buf, 2, 13);
    expect(first).toBe('http.method');
    expect(cache.ascii(buf, 15, 26)).toBe(first);
    expect(cache.ascii(buf, 0, 0)).toBe('');
  });

  it('leaves non-ASCII and texts longer than maxBytes to the caller', () => {
    const cache = createWireText({ slots: 16, maxBytes: 8 });
    expect(cache.ascii(Buffer.from('grüße'), 0, 6)).toBeUndefined();
    expect(cache.ascii(Buffer.from('123456789'), 0, 9)).toBeUndefined();
    expect(cache.ascii(Buffer.from('12345678'), 0, 8)).toBe('12345678');
  });

  it('answers every text right when many texts share few slots (collisions replace, never confuse)', () => {
    const rnd = prng(7);
    const cache = createWireText({ slots: 8, maxBytes: 16 });
    const vocabulary = Array.from({ length: 200 }, (_, i) => `${'ab'.slice(0, i % 3)}${i.toString(36)}${i % 7 === 0 ? 'z'.repeat(rnd() * 12) : ''}`);
    for (let n = 0; n < 20_000; n++) {
      const text = vocabulary[Math.floor(rnd() * vocabulary.length)] ?? '';
      const pad = Math.floor(rnd() * 5);
      const buf = Buffer.concat([Buffer.alloc(pad, 0x41), Buffer.from(text), Buffer.alloc(3, 0x42)]);
      expect(cache.ascii(buf, pad, pad + text.length)).toBe(text);
    }
  });

  it('keeps the last two texts of a pair of slots: two texts used in turn do not evict each other', () => {
    const cache = createWireText({ slots: 2, maxBytes: 16 });
    const buf = Buffer.from('alpha|beta|gamma');
    let decoded = 0;
    const slice = (buf as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice.bind(buf);
    Object.assign(buf, { latin1Slice: (start: number, end: number) => (decoded++, slice(start, end)) });
    const [alpha, beta, gamma] = [() => cache.ascii(buf, 0, 5), () => cache.ascii(buf, 6, 10), () => cache.ascii(buf, 11, 16)];
    for (let i = 0; i < 10; i++) expect([alpha(), beta()]).toEqual(['alpha', 'beta']);
    expect(decoded).toBe(2);
    // A third text takes the older one's place (alpha's): beta stays, alpha is decoded again.
    expect(gamma()).toBe('gamma');
    expect(beta()).toBe('beta');
    expect(decoded).toBe(3);
    expect(alpha()).toBe('alpha');
    expect(decoded).toBe(4);
  });

  it('refuses a slot count that is not a power of two, or under two', () => {
    expect(() => createWireText({ slots: 12, maxBytes: 8 })).toThrow(/power of two/);
    expect(() => createWireText({ slots: 1, maxBytes: 8 })).toThrow(/at least 2/);
  });
});
