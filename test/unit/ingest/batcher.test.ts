/** The batcher's flush rules: by rows, by delay, by a pause in arrivals once large enough, and with one insert per table at a time (the embedded engine's rule). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createBatcher } from '../../../src/ingest/pipeline/batcher.js';
import type { TableRows } from '../../../src/ingest/pipeline/formats.js';
import type { WriteResult, Writer } from '../../../src/ingest/pipeline/writer.js';

/** A writer whose inserts wait until released, recording each one's table and rows. */
function gatedWriter() {
  const writes: Array<{ table: string; rows: number; payload: string; since?: number | undefined }> = [];
  const gates: Array<(r: WriteResult) => void> = [];
  const writer: Writer = {
    write: (table, payload, rows, _token, _limit, since) => {
      writes.push({ table, rows, payload: payload.toString(), ...(since === undefined ? {} : { since }) });
      return new Promise<WriteResult>((resolve) => gates.push(resolve));
    },
    shutdown() {},
  };
  const release = async (result: WriteResult = { status: 'ok' }): Promise<void> => {
    for (let i = 0; i < 100 && gates.length === 0; i++) await Promise.resolve();
    gates.shift()?.(result);
    for (let i = 0; i < 10; i++) await Promise.resolve();
  };
  return { writer, writes, release, get waiting() {
    return gates.length;
  } };
}

const rows = (table: string, n: number, tag = 'x'): TableRows => ({ table, rows: n, data: Buffer.from(tag) });

afterEach(() => {
  vi.useRealTimers();
});

describe('batcher', () => {
  it('writes a batch at max_rows or after max_delay, several inserts of a table at once by default', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const w = gatedWriter();
    const batcher = createBatcher({ writer: w.writer, maxRows: 10, maxDelayMs: 200 });
    const a = batcher.add([rows('t', 10, 'a')]);
    expect(w.writes).toEqual([{ table: 't', rows: 10, payload: 'a' }]);
    const b = batcher.add([rows('t', 3, 'b')]);
    expect(batcher.pending).toBe(3);
    vi.advanceTimersByTime(200);
    expect(w.writes.map((x) => x.payload)).toEqual(['a', 'b']);
    expect(w.waiting).toBe(2);
    await w.release();
    await w.release();
    await Promise.all([a, b]);
    await batcher.shutdown();
  });

  it('with max_in_flight 1, a batch due while its table inserts keeps gathering rows and goes when the insert ends, its retries counted from when it began to wait', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: 1_000_000 });
    const w = gatedWriter();
    const batcher = createBatcher({ writer: w.writer, maxRows: 100, maxDelayMs: 200, maxInFlight: 1 });
    const first = batcher.add([rows('t', 5, 'a')]);
    vi.advanceTimersByTime(200);
    expect(w.writes).toHaveLength(1);
    const later = [batcher.add([rows('t', 5, 'b')])];
    vi.advanceTimersByTime(200); // due, but the first insert still runs
    later.push(batcher.add([rows('t', 5, 'c')]), batcher.add([rows('u', 5, 'other table')]));
    vi.advanceTimersByTime(200);
    // Another table is not held back by t's insert.
    expect(w.writes.map((x) => x.payload)).toEqual(['a', 'other table']);
    expect(batcher.pending).toBe(10);
    let settled = false;
    const waiting = Promise.all(later).then(() => (settled = true));
    await w.release(); // t's first insert ends: the due batch (b and c together) starts at once
    await first;
    expect(w.writes.map((x) => [x.payload, x.rows])).toEqual([['a', 5], ['other table', 5], ['bc', 10]]);
    // b was due 400 ms after the start (the first insert was still running): its insert's max_elapsed counts from then.
    expect(w.writes.map((x) => x.since)).toEqual([undefined, undefined, 1_000_400]);
    expect(settled).toBe(false);
    await w.release();
    await w.release();
    await waiting;
    await batcher.shutdown();
  });

  it('with max_in_flight 1, a batch that fills while its table inserts waits full, and a new one gathers behind it; shutdown writes all in order', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const w = gatedWriter();
    const batcher = createBatcher({ writer: w.writer, maxRows: 10, maxDelayMs: 200, maxInFlight: 1 });
    const all = [batcher.add([rows('t', 10, 'a')]), batcher.add([rows('t', 10, 'b')]), batcher.add([rows('t', 4, 'c')])];
    expect(w.writes.map((x) => x.payload)).toEqual(['a']);
    const closed = batcher.shutdown();
    await w.release();
    expect(w.writes.map((x) => x.payload)).toEqual(['a', 'b']);
    await w.release();
    expect(w.writes.map((x) => x.payload)).toEqual(['a', 'b', 'c']);
    await w.release();
    await Promise.all(all);
    await closed;
    expect(batcher.pending).toBe(0);
  });

  it('with quiet set, a batch of quiet.rows or more goes once no rows came for quiet.ms; a smaller one waits for max_delay', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'], now: 1_000_000 });
    const w = gatedWriter();
    const batcher = createBatcher({ writer: w.writer, maxRows: 100, maxDelayMs: 200, maxInFlight: 1, quiet: { rows: 10, ms: 10 } });
    // Under quiet.rows: no early write, however long the pause.
    const small = batcher.add([rows('t', 9, 'a')]);
    vi.advanceTimersByTime(199);
    expect(w.writes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(w.writes.map((x) => x.payload)).toEqual(['a']);
    // Large enough: rows arriving every 6 ms keep it open; 10 ms after the last one, it is due (and
    // waits for the running insert, as a batch due by max_delay does).
    const big = [batcher.add([rows('t', 6, 'b')]), batcher.add([rows('t', 6, 'c')])];
    for (const tag of ['d', 'e', 'f']) {
      vi.advanceTimersByTime(6);
      big.push(batcher.add([rows('t', 1, tag)]));
    }
    vi.advanceTimersByTime(9);
    await w.release();
    expect(w.writes.map((x) => x.payload)).toEqual(['a']);
    vi.advanceTimersByTime(1);
    await w.release();
    await small;
    expect(w.writes.map((x) => [x.payload, x.rows])).toEqual([['a', 9], ['bcdef', 15]]);
    // 18 + 10 ms after the batch opened, far before its max_delay.
    expect(Date.now() - 1_000_200).toBe(28);
    await w.release();
    await Promise.all(big);
    await batcher.shutdown();
  });

  it('rejects every row of a batch storage did not take with a retryable error, and goes on with the next batch', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const w = gatedWriter();
    const batcher = createBatcher({ writer: w.writer, maxRows: 10, maxDelayMs: 200, maxInFlight: 1 });
    const failed = batcher.add([rows('t', 10, 'a')]);
    const next = batcher.add([rows('t', 1, 'b')]);
    vi.advanceTimersByTime(200);
    await w.release({ status: 'failed', error: new Error('refused') });
    await expect(failed).rejects.toThrow(/storage did not take the data: refused/);
    expect(w.writes.map((x) => x.payload)).toEqual(['a', 'b']);
    await w.release();
    await next;
    await batcher.shutdown();
  });
});
