/** The wire text cache: the text of any byte range, same string on a hit, non-ASCII and long texts left to the caller, bounded slots. */
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

  it('refuses a slot count that is not a power of two', () => {
    expect(() => createWireText({ slots: 12, maxBytes: 8 })).toThrow(/power of two/);
  });
});
