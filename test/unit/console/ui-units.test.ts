/** The console's DOM-free units (ui/): Connect stream envelopes, time windows and formats, /metrics sums. */
import { describe, expect, it } from 'vitest';
import { END_STREAM, createEnvelopeReader, encodeEnvelope } from '../../../ui/api/envelope.js';
import { sumByName, total } from '../../../ui/metrics-text.js';
import { formatBytes, formatDuration, isWindow, windowRange } from '../../../ui/time.js';

/** An end-stream envelope as a Connect server writes it. */
function endEnvelope(json: unknown): Uint8Array {
  const e = encodeEnvelope(json);
  e[0] = END_STREAM;
  return e;
}

describe('Connect stream envelopes', () => {
  it('frames JSON with a flags byte and a big-endian length', () => {
    const e = encodeEnvelope({ id: 'a' });
    expect([...e.slice(0, 5)]).toEqual([0, 0, 0, 0, 10]);
    expect(new TextDecoder().decode(e.slice(5))).toBe('{"id":"a"}');
  });

  it('splits a stream into its envelopes however it is chunked, byte by byte included', () => {
    const stream = new Uint8Array([...encodeEnvelope({ job: { progress: 10 } }), ...encodeEnvelope({ job: { progress: 50 } }), ...endEnvelope({})]);
    for (const size of [1, 2, 7, stream.length]) {
      const reader = createEnvelopeReader(1024);
      const got: Array<{ flags: number; json: unknown }> = [];
      for (let i = 0; i < stream.length; i += size) {
        for (const e of reader.push(stream.slice(i, i + size))) got.push({ flags: e.flags, json: JSON.parse(new TextDecoder().decode(e.data)) });
      }
      expect(got, `chunks of ${size}`).toEqual([
        { flags: 0, json: { job: { progress: 10 } } },
        { flags: 0, json: { job: { progress: 50 } } },
        { flags: END_STREAM, json: {} },
      ]);
      expect(reader.pending).toBe(0);
    }
  });

  it('refuses a message declared over its bound before buffering it', () => {
    const reader = createEnvelopeReader(100);
    expect(() => reader.push(new Uint8Array([0, 0, 0, 0, 101]))).toThrow(/101 bytes is over the 100-byte bound/);
    expect(createEnvelopeReader(100).push(new Uint8Array([0, 0, 0, 0, 100]))).toEqual([]);
  });
});

describe('time windows and formats', () => {
  it('offers the picker windows only', () => {
    expect(isWindow('1h')).toBe(true);
    expect(isWindow('2h')).toBe(false);
    expect(isWindow(null)).toBe(false);
  });

  it('turns a window into RFC 3339 start and end times', () => {
    const now = Date.parse('2026-03-01T12:00:00Z');
    expect(windowRange('15m', now)).toEqual({ startTime: '2026-03-01T11:45:00.000Z', endTime: '2026-03-01T12:00:00.000Z' });
    expect(windowRange('7d', now).startTime).toBe('2026-02-22T12:00:00.000Z');
  });

  it('formats durations and sizes', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(12.7)).toBe('12s');
    expect(formatDuration(3_725)).toBe('1h 2m');
    expect(formatDuration(90_000)).toBe('1d 1h');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(20 * 1024 * 1024)).toBe('20.0 MiB');
  });
});

describe('/metrics sums', () => {
  it('sums every series of a name, skipping comments, NaN and junk', () => {
    const text = [
      '# HELP heimdall_receiver_accepted_spans_total Spans accepted',
      '# TYPE heimdall_receiver_accepted_spans_total counter',
      'heimdall_receiver_accepted_spans_total{transport="grpc"} 3',
      'heimdall_receiver_accepted_spans_total{transport="http",x="a b"} 4',
      'heimdall_receiver_accepted_log_records_total{transport="grpc"} 5',
      'heimdall_storage_bytes 1e3',
      'heimdall_ratio NaN',
      '}{ junk',
    ].join('\n');
    const sums = sumByName(text);
    expect(sums.get('heimdall_receiver_accepted_spans_total')).toBe(7);
    expect(sums.get('heimdall_storage_bytes')).toBe(1000);
    expect(sums.has('heimdall_ratio')).toBe(false);
    expect(total(sums, /^heimdall_receiver_accepted_.*_total$/)).toBe(12);
  });
});
