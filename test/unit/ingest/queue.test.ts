/** The durable queue's own logic, on real files, with a writer that records what it is given. */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry, type HealthRegistry } from '../../../src/health/registry.js';
import { RetryableError } from '../../../src/ingest/pipeline/errors.js';
import { StorageError } from '../../../src/storage/errors.js';
import { createDurableQueue, type DurableQueue } from '../../../src/ingest/pipeline/queue.js';
import type { QueueFiles } from '../../../src/ingest/pipeline/queue-files.js';
import { crc32, encodeParts, encodeRecord, formatFor, HEADER_BYTES, headerSalt, SEGMENT_HEADER_BYTES, segmentFirst, segmentName } from '../../../src/ingest/pipeline/wal.js';
import type { Writer, WriteResult } from '../../../src/ingest/pipeline/writer.js';
import { faultyFiles, type FileCall } from '../../support/faulty-files.js';
import { canMountTmpfs, mountTmpfs } from '../../support/tmpfs.js';
import { silentLogger, tempDir } from '../../support/temp.js';

interface Call {
  table: string;
  lines: string[];
  token: string;
}

/**
 * A writer that records what it stores. Like ClickHouse with insert_deduplication_token, an insert
 * whose token was stored before is dropped (counted in `duplicates`).
 */
function recordingWriter(decide: (call: Call) => Promise<WriteResult> | WriteResult = () => ({ status: 'ok' }), tokens = new Set<string>()): Writer & { calls: Call[]; stored: string[]; duplicates: number; tokens: Set<string> } {
  const calls: Call[] = [];
  const stored: string[] = [];
  const w = {
    calls,
    stored,
    tokens,
    duplicates: 0,
    async write(table: string, payload: Buffer, _rows: number, token: string): Promise<WriteResult> {
      const call = { table, lines: payload.toString().split('\n').filter(Boolean), token };
      calls.push(call);
      const result = await decide(call);
      if (result.status === 'ok') {
        if (tokens.has(token)) w.duplicates += 1;
        else stored.push(...call.lines);
        tokens.add(token);
      }
      return result;
    },
    shutdown() {},
  };
  return w;
}

/** A writer for storage that is down: every insert waits, and fails once the queue shuts down (as the real writer does). */
function downWriter(): Writer {
  const waiting: Array<() => void> = [];
  return {
    write: () => new Promise<WriteResult>((resolve) => waiting.push(() => resolve({ status: 'failed', error: new Error('shutting down') }))),
    shutdown: () => {
      for (const w of waiting.splice(0)) w();
    },
  };
}

interface QueueOverrides {
  refusedTimeoutMs?: number;
  deadLetterMaxBytes?: number;
  segmentBytes?: number;
  maxBytes?: number;
  maxRows?: number;
  maxDelayMs?: number;
  files?: QueueFiles;
  metrics?: Registry;
  health?: HealthRegistry;
}

const queue = (path: string, writer: Writer, overrides: QueueOverrides = {}) =>
  createDurableQueue({
    path,
    writer,
    storageReady: () => true,
    maxBytes: 64 << 20,
    segmentBytes: 4096,
    maxRows: 50,
    maxDelayMs: 5,
    refusedTimeoutMs: 200,
    deadLetterMaxBytes: 1 << 20,
    retry: { initialMs: 1, maxMs: 20 },
    logger: silentLogger(),
    metrics: new Registry(),
    health: createHealthRegistry(),
    ...overrides,
  });

const part = (i: number) => ({ table: 't', data: Buffer.from(`{"i":${i}}\n`), rows: 1 });
const line = (i: number) => `{"i":${i}}`;
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
const segmentFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.wal')).sort();
const metric = async (r: Registry, name: string) => Number((await r.getSingleMetricAsString(name)).match(/\s([\d.e+]+)$/m)?.[1] ?? 'NaN');

/** Appends records `ids` one by one with storage down, then shuts the queue down: a queue directory full of data (no batch planned, unless maxDelayMs says otherwise). */
async function fill(dir: string, ids: number[], overrides: QueueOverrides = {}): Promise<void> {
  const q = queue(dir, downWriter(), { maxDelayMs: 60_000, ...overrides });
  await q.start();
  for (const i of ids) await q.append([part(i)]);
  await q.shutdown();
}

/** Starts a queue on `dir` with storage up, waits until it stored everything, shuts it down. */
async function drain(dir: string, overrides: QueueOverrides = {}): Promise<{ writer: ReturnType<typeof recordingWriter>; q: DurableQueue; metrics: Registry }> {
  const writer = recordingWriter();
  const metrics = overrides.metrics ?? new Registry();
  const q = queue(dir, writer, { ...overrides, metrics });
  await q.start();
  await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
  await q.shutdown();
  return { writer, q, metrics };
}

/** Where record `i` (its header) starts in the segment files, and where its payload's text is. */
function locate(dir: string, i: number): { file: string; start: number; text: number } {
  for (const name of segmentFiles(dir)) {
    const data = readFileSync(join(dir, name));
    const text = data.indexOf(`${line(i)}\n`);
    if (text >= 0) return { file: join(dir, name), start: text - 11 - HEADER_BYTES, text };
  }
  throw new Error(`record ${i} not found`);
}

/** Which records each segment file holds, in order. */
function recordsBySegment(dir: string, ids: number[]): number[][] {
  const files = segmentFiles(dir).map((n) => join(dir, n));
  return files.map((f) => ids.filter((i) => locate(dir, i).file === f));
}

/** A record as the previous version wrote it: u32 length, u32 CRC-32 of the payload, u64 sequence number, payload. */
function v1Record(seq: bigint, i: number, data = `${line(i)}\n`): Buffer {
  const payload = encodeParts([{ table: 't', rows: 1, data: Buffer.from(data) }]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(payload.length, 0);
  h.writeUInt32LE(crc32(payload), 4);
  h.writeBigUInt64LE(seq, 8);
  return Buffer.concat([h, payload]);
}

/** A refusal as the writer reports it past its limit: ClickHouse answers, the batch keeps failing. */
const refusedBy252 = (): WriteResult => ({ status: 'failed', error: new StorageError('insert into t: Code: 252. Too many partitions for single INSERT block', { retryable: true, code: 252 }) });

/** Calls that need free space: on a full disk they fail with ENOSPC (a writev first writes what fits). In-place checkpoint writes do not. */
const needsSpace = (key: string) => /^(writev:(segment|checkpoint-tmp|dead-letter)|open-w:|mkdir:dead-letter)/.test(key);

function flipByte(file: string, at: number): void {
  const data = readFileSync(file);
  data[at] = (data[at] ?? 0) ^ 0x10;
  writeFileSync(file, data);
}

describe('durable queue', () => {
  it('delivers every record exactly once, in order, across many segment rotations while consuming', async () => {
    const dir = tempDir();
    // A writer that takes a moment, so segments rotate and get released while a batch is in flight.
    const writer = recordingWriter(async () => {
      await new Promise((r) => setTimeout(r, 3));
      return { status: 'ok' };
    });
    const q = queue(dir.path, writer, { segmentBytes: 256, maxRows: 7 });
    await q.start();
    for (let wave = 0; wave < 40; wave++) {
      await Promise.all(Array.from({ length: 1 + (wave % 9) }, (_, k) => q.append([part(wave * 10 + k)])));
      await new Promise((r) => setTimeout(r, wave % 4));
    }
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.shutdown();
    const expected = Array.from({ length: 40 }, (_, wave) => Array.from({ length: 1 + (wave % 9) }, (_, k) => line(wave * 10 + k))).flat();
    expect(writer.stored).toEqual(expected);
    // Stored segments are released: only the last one or two remain.
    expect(segmentFiles(dir.path).length).toBeLessThanOrEqual(2);
    dir.cleanup();
  });

  it('after a crash, replays the planned batch first with the same token, then the rest, once each', async () => {
    const dir = tempDir();
    let release: (() => void) | undefined;
    const hung = recordingWriter(() => new Promise<WriteResult>((resolve) => (release = () => resolve({ status: 'failed', error: new Error('crashed') }))));
    hung.shutdown = () => release?.();
    const a = queue(dir.path, hung);
    await a.start();
    for (let i = 0; i < 10; i++) await a.append([part(i)]);
    await expect.poll(() => hung.calls.length).toBe(1); // the first batch is planned and in flight: then the process dies
    const firstToken = hung.calls[0]?.token;
    const firstLines = hung.calls[0]?.lines;

    const writer = recordingWriter();
    const b = queue(dir.path, writer);
    await b.start();
    await expect.poll(() => b.depth, { timeout: 10_000 }).toBe(0);
    await b.append([part(10)]);
    await expect.poll(() => b.depth).toBe(0);
    await b.shutdown();
    expect(writer.calls[0]?.token).toBe(firstToken);
    expect(writer.calls[0]?.lines).toEqual(firstLines);
    expect(writer.stored).toEqual(range(0, 11).map(line));
    await a.shutdown();
    dir.cleanup();
  });

  it('starts over an empty segment left by a crash without losing what follows', async () => {
    const dir = tempDir();
    const first = recordingWriter();
    const a = queue(dir.path, first);
    await a.start();
    await a.append([part(1)]);
    await expect.poll(() => a.depth).toBe(0);
    await a.shutdown();
    // A crash right after creating the next segment, before writing to it.
    writeFileSync(join(dir.path, segmentName(2n)), '');
    const writer = recordingWriter();
    const b = queue(dir.path, writer);
    await b.start();
    for (let i = 2; i < 6; i++) await b.append([part(i)]);
    await expect.poll(() => b.depth).toBe(0);
    await b.shutdown();
    expect(writer.stored).toEqual(range(2, 6).map(line));
    dir.cleanup();
  });

  it('moves a batch ClickHouse refuses for good to the dead-letter directory and goes on', async () => {
    const dir = tempDir();
    const writer = recordingWriter((call) => (call.lines.includes('{"i":"poison"}') ? { status: 'failed', error: new Error('Code: 27. Cannot parse input') } : { status: 'ok' }));
    const q = queue(dir.path, writer, { maxRows: 1 });
    await q.start();
    await q.append([{ table: 't', data: Buffer.from('{"i":"poison"}\n'), rows: 1 }]);
    await q.append([part(7)]);
    await expect.poll(() => q.depth, { timeout: 15_000 }).toBe(0);
    await q.shutdown();
    expect(writer.calls.filter((c) => c.lines.includes('{"i":"poison"}'))).toHaveLength(1);
    expect(writer.stored).toEqual([line(7)]);
    const dead = readdirSync(join(dir.path, 'dead-letter'));
    expect(dead).toEqual(['1-1-t.jsonl']);
    expect(readFileSync(join(dir.path, 'dead-letter', '1-1-t.jsonl'), 'utf8')).toContain('poison');
    dir.cleanup();
  }, 20_000);

  it('refuses appends past max size and takes them again once stored', async () => {
    const dir = tempDir();
    let open = false;
    const writer = recordingWriter(async () => {
      while (!open) await new Promise((r) => setTimeout(r, 10));
      return { status: 'ok' };
    });
    const q = queue(dir.path, writer, { maxBytes: 4 * 1024, segmentBytes: 1024 });
    await q.start();
    let refused = 0;
    for (let i = 0; i < 200; i++) await q.append([part(i)]).catch(() => (refused += 1));
    expect(refused).toBeGreaterThan(0);
    open = true;
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.append([part(999)]);
    await expect.poll(() => q.depth).toBe(0);
    await q.shutdown();
    expect(writer.stored).toContain(line(999));
    dir.cleanup();
  });
});

describe('durable queue: a flipped byte costs only the damaged record', () => {
  const ids = range(1, 31);
  /** Which record to damage (from the records of each segment) and which byte of it. */
  const cases: Array<{ name: string; pick: (segments: number[][]) => number | undefined; at: (r: { start: number; text: number }) => number }> = [
    { name: 'record header, first byte', pick: (s) => s[0]?.[4], at: (r) => r.start },
    { name: 'record header, byte 4', pick: (s) => s[0]?.[4], at: (r) => r.start + 4 },
    { name: 'record header, byte 9', pick: (s) => s[1]?.[2], at: (r) => r.start + 9 },
    { name: 'record header, last byte', pick: (s) => s[1]?.[3], at: (r) => r.start + HEADER_BYTES - 1 },
    { name: 'payload', pick: (s) => s[0]?.[5], at: (r) => r.text + 3 },
    { name: 'first record of the first segment (header)', pick: (s) => s[0]?.[0], at: (r) => r.start + 4 },
    { name: 'first record of a middle segment (payload)', pick: (s) => s[1]?.[0], at: (r) => r.text + 2 },
    { name: 'last record of a segment (payload)', pick: (s) => s[0]?.at(-1), at: (r) => r.text + 2 },
    { name: 'last record of a segment (header)', pick: (s) => s[1]?.at(-1), at: (r) => r.start + 4 },
    { name: 'last record of the last segment (payload)', pick: (s) => s.at(-1)?.at(-1), at: (r) => r.text + 2 },
  ];

  for (const c of cases) {
    it(`${c.name}: after a restart every other acknowledged record is stored exactly once`, async () => {
      const dir = tempDir();
      await fill(dir.path, ids, { segmentBytes: 400 });
      const bySegment = recordsBySegment(dir.path, ids);
      expect(bySegment.length).toBeGreaterThanOrEqual(3);
      const victim = c.pick(bySegment);
      if (victim === undefined) throw new Error('no such record');
      const where = locate(dir.path, victim);
      flipByte(where.file, c.at(where));
      const damaged = readFileSync(where.file);

      const { writer, metrics } = await drain(dir.path, { segmentBytes: 400 });
      expect(writer.stored).toEqual(ids.filter((i) => i !== victim).map(line));
      // The damaged bytes are kept, counted, and no segment that still held records was deleted before its records were stored.
      const dead = readdirSync(join(dir.path, 'dead-letter'));
      expect(dead).toHaveLength(1);
      const [, segment, start, end] = /^damaged-(seg-\d+\.wal)-(\d+)-(\d+)\.bin$/.exec(dead[0] ?? '') ?? [];
      expect(where.file.endsWith(segment ?? '?')).toBe(true);
      expect(Number(start)).toBe(where.start);
      expect(readFileSync(join(dir.path, 'dead-letter', dead[0] ?? ''))).toEqual(damaged.subarray(Number(start), Number(end)));
      expect(await metric(metrics, 'heimdall_exporter_queue_corrupt_records_total')).toBe(1);
      expect(await metric(metrics, 'heimdall_exporter_queue_corrupt_bytes_total')).toBeGreaterThan(0);
      dir.cleanup();
    });
  }

  it('damage met while the consumer reads (after start) is kept aside the same way', async () => {
    const dir = tempDir();
    const writer = recordingWriter();
    const metrics = new Registry();
    const gate = { open: false };
    const slow = recordingWriter(async () => {
      while (!gate.open) await new Promise((r) => setTimeout(r, 5));
      return { status: 'ok' };
    });
    const q = queue(dir.path, slow, { segmentBytes: 512, maxRows: 5, metrics });
    await q.start();
    for (const i of ids) await q.append([part(i)]);
    // Records 1-5 are planned and in flight; record 12 (not read yet) is damaged on disk.
    await expect.poll(() => slow.calls.length).toBe(1);
    const where = locate(dir.path, 12);
    flipByte(where.file, where.text + 1);
    gate.open = true;
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.shutdown();
    expect(slow.stored).toEqual(ids.filter((i) => i !== 12).map(line));
    expect(writer.stored).toEqual([]);
    expect(await metric(metrics, 'heimdall_exporter_queue_corrupt_records_total')).toBe(1);
    expect(readdirSync(join(dir.path, 'dead-letter'))).toHaveLength(1);
    dir.cleanup();
  });

  it('cuts only a write torn by a crash off the end of the last segment: nothing counted as damage, nothing lost', async () => {
    const dir = tempDir();
    await fill(dir.path, range(1, 11));
    const last = join(dir.path, segmentFiles(dir.path).at(-1) ?? '');
    const whole = statSync(last).size;
    // The first half of a copy of the last record, as a crash mid-write leaves it.
    const r = locate(dir.path, 10);
    const data = readFileSync(last);
    writeFileSync(last, Buffer.concat([data, data.subarray(r.start, r.start + Math.floor((whole - r.start) / 2))]));
    const { writer, metrics } = await drain(dir.path);
    expect(writer.stored).toEqual(range(1, 11).map(line));
    expect(await metric(metrics, 'heimdall_exporter_queue_corrupt_records_total')).toBe(0);
    expect(existsSync(join(dir.path, 'dead-letter'))).toBe(false);
    dir.cleanup();
  });
});

describe('durable queue: directories written by the previous version', () => {
  it('reads its segments, state.json and plan.json (replaying the plan with its token), damaged records included, then writes the new format', async () => {
    const dir = tempDir();
    // Records 1-3 stored; 4-6 planned; 7-12 queued; record 9 damaged; a torn write at the end.
    writeFileSync(join(dir.path, 'state.json'), JSON.stringify({ id: 'old-queue-id', committed: '3' }));
    writeFileSync(join(dir.path, 'plan.json'), JSON.stringify({ from: '4', to: '6' }));
    const records = range(1, 13).map((i) => v1Record(BigInt(i), i));
    const nine = Buffer.from(records[8] ?? Buffer.alloc(0));
    nine[20] = (nine[20] ?? 0) ^ 1;
    records[8] = nine;
    writeFileSync(join(dir.path, segmentName(1n)), Buffer.concat([...records, v1Record(13n, 13).subarray(0, 20)]));

    const writer = recordingWriter();
    const q = queue(dir.path, writer);
    await q.start();
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.append([part(100)]);
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.shutdown();
    expect(writer.calls[0]?.token).toBe('old-queue-id:4-6:t');
    expect(writer.stored).toEqual([...range(4, 9), ...range(10, 13), 100].map(line));
    expect(existsSync(join(dir.path, 'state.json'))).toBe(false);
    expect(existsSync(join(dir.path, 'plan.json'))).toBe(false);
    expect(readdirSync(join(dir.path, 'dead-letter'))).toHaveLength(1);
    // What the new version wrote reads back after a restart: nothing is delivered twice.
    const again = await drain(dir.path);
    expect(again.writer.stored).toEqual([]);
    dir.cleanup();
  });
});

describe('durable queue: a disk that fails (injected at every write and fsync)', () => {
  /** Calls that change the disk: any of them can fail with EIO. */
  const writes = (key: string) => /^(open-w|open-r\+|writev|datasync|truncate|rename|unlink|fsyncDir|mkdir):/.test(key);

  /**
   * Appends records 0-29 in groups of 3 while the disk fails as `fault` says, then heals it; checks
   * that appends are taken again, that the queue drains by itself, and, after a restart, that every
   * acknowledged record is stored exactly once and no refused one is.
   */
  async function scenario(fault: (call: FileCall, files: { healed: boolean }) => 'ENOSPC' | 'EIO' | 'short' | undefined): Promise<{ acked: number; refused: number; stored: number; duplicates: number; calls: FileCall[] }> {
    const dir = tempDir();
    const state = { healed: true };
    const files = faultyFiles((call) => fault(call, state));
    const writer = recordingWriter();
    const health = createHealthRegistry();
    const q = queue(dir.path, writer, { segmentBytes: 200, maxRows: 4, maxDelayMs: 1, files, health });
    await q.start();
    state.healed = false;
    const acked: number[] = [];
    const refused: number[] = [];
    for (let g = 0; g < 10; g++) {
      await Promise.all(
        range(g * 3, g * 3 + 3).map((i) =>
          q.append([part(i)]).then(
            () => acked.push(i),
            (err: unknown) => {
              expect(err).toBeInstanceOf(RetryableError);
              refused.push(i);
            },
          ),
        ),
      );
    }
    state.healed = true;
    // Space is back: appends are taken again, and the queue drains by itself.
    for (const i of [100, 101, 102]) {
      await q.append([part(i)]);
      acked.push(i);
    }
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await expect.poll(() => health.component('queue')?.state, { timeout: 10_000 }).toBe('ready');
    await q.shutdown();
    // A restart reads what is on disk (cut-back segments, the checkpoint): nothing more is delivered.
    const again = await drain(dir.path, { segmentBytes: 200, maxRows: 4 });
    const stored = [...writer.stored, ...again.writer.stored];
    expect(stored.filter((l, k) => stored.indexOf(l) !== k)).toEqual([]);
    expect([...stored].sort()).toEqual(acked.map(line).sort());
    dir.cleanup();
    return { acked: acked.length, refused: refused.length, stored: stored.length, duplicates: writer.duplicates + again.writer.duplicates, calls: files.calls };
  }

  it('never acknowledges a write that did not complete, never loses an acknowledged one, and never sticks', async () => {
    const clean = await scenario(() => undefined);
    const keys = new Map<string, number>();
    for (const c of clean.calls) keys.set(c.key, Math.max(keys.get(c.key) ?? 0, c.occurrence + 1));
    const totals = { runs: 0, acked: 0, refused: 0, stored: 0, duplicates: 0 };
    const add = (r: Awaited<ReturnType<typeof scenario>>) => {
      totals.runs += 1;
      totals.acked += r.acked;
      totals.refused += r.refused;
      totals.stored += r.stored;
      totals.duplicates += r.duplicates;
    };
    for (const [key, count] of keys) {
      for (const n of [...new Set([0, 1, Math.floor(count / 2), count - 1])]) {
        // A full disk from the n-th call of this kind until it is healed (the first write takes what fits).
        if (needsSpace(key)) {
          let hit = false;
          let shortDone = false;
          add(
            await scenario((call, s) => {
              if (s.healed) return undefined;
              if (call.key === key && call.occurrence === n) hit = true;
              if (!hit || !needsSpace(call.key)) return undefined;
              if (call.key.startsWith('writev') && !shortDone) {
                shortDone = true;
                return 'short';
              }
              return 'ENOSPC';
            }),
          );
        }
        // One I/O error at the n-th call of this kind.
        if (writes(key)) add(await scenario((call, s) => (!s.healed && call.key === key && call.occurrence === n ? 'EIO' : undefined)));
        // One short write (the rest is written by the next call).
        if (key.startsWith('writev')) add(await scenario((call, s) => (!s.healed && call.key === key && call.occurrence === n ? 'short' : undefined)));
      }
    }
    console.log(`injected disk faults: ${totals.runs} runs over ${keys.size} kinds of call; ${totals.acked} records acknowledged, ${totals.refused} refused, ${totals.stored} stored (every acknowledged one exactly once, no refused one); ${totals.duplicates} replayed inserts dropped by their token`);
    expect(totals.stored).toBe(totals.acked);
    expect(totals.refused).toBeGreaterThan(0);
  }, 240_000);

  it('a short write is finished by the next write; a short write then ENOSPC is refused and cut back to the last whole record', async () => {
    const dir = tempDir();
    const mode: { fault: 'short' | 'full' | undefined } = { fault: undefined };
    let shorts = 0;
    const files = faultyFiles((call) => {
      if (call.key !== 'writev:segment' || !mode.fault) return undefined;
      shorts += 1;
      if (shorts === 1) return 'short';
      return mode.fault === 'full' ? 'ENOSPC' : undefined;
    });
    const writer = recordingWriter();
    const q = queue(dir.path, writer, { files });
    await q.start();
    await q.append([part(1)]);
    mode.fault = 'short';
    await q.append([part(2)]);
    const seg = join(dir.path, segmentFiles(dir.path).at(-1) ?? '');
    const size = statSync(seg).size;
    shorts = 0;
    mode.fault = 'full';
    const err = await q.append([part(3)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as Error).message).toMatch(/durable queue write failed: ENOSPC/);
    // No partial record and no zero padding: the segment is exactly as it was.
    expect(statSync(seg).size).toBe(size);
    expect(readFileSync(seg).includes('{"i":3}')).toBe(false);
    mode.fault = undefined;
    await q.append([part(4)]);
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.shutdown();
    expect(writer.stored).toEqual([1, 2, 4].map(line));
    const again = await drain(dir.path);
    expect(again.writer.stored).toEqual([]);
    expect(await metric(again.metrics, 'heimdall_exporter_queue_corrupt_records_total')).toBe(0);
    dir.cleanup();
  });

  it('creates its checkpoint at start: a disk that fills before the first batch is planned does not stop it; appends stall it (failed, for the strict readiness) until space is back', async () => {
    const dir = tempDir();
    // Records queued, no batch planned yet; then a restart on a full disk.
    await fill(dir.path, range(0, 10), { maxDelayMs: 60_000 });
    expect(existsSync(join(dir.path, 'checkpoint'))).toBe(true);
    const disk = { full: true };
    const files = faultyFiles((call) => (disk.full && needsSpace(call.key) ? 'ENOSPC' : undefined));
    const health = createHealthRegistry();
    const writer = recordingWriter();
    const q = queue(dir.path, writer, { files, health });
    await q.start();
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    expect(writer.stored).toEqual(range(0, 10).map(line));
    expect(health.component('queue')?.state).toBe('ready');
    // Appends are refused while the disk is full, and say why: the queue is stalled, the strict readiness off.
    await expect(q.append([part(50)])).rejects.toThrow(/durable queue write failed: ENOSPC/);
    expect(health.component('queue')).toMatchObject({ state: 'failed', reason: expect.stringMatching(/waiting for disk space: appends fail: ENOSPC/) });
    expect(health.strictReadiness().ready).toBe(false);
    expect(health.readiness().ready).toBe(true);
    expect(q.stalled).toMatch(/ENOSPC/);
    disk.full = false;
    await q.append([part(51)]);
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    expect(health.component('queue')?.state).toBe('ready');
    expect(q.stalled).toBeUndefined();
    await q.shutdown();
    expect(writer.stored).toEqual([...range(0, 10), 51].map(line));
    dir.cleanup();
  });

  it('an append stall clears once the consumer frees space, without waiting for the next append', async () => {
    const dir = tempDir();
    const disk = { full: false };
    const files = faultyFiles((call) => (disk.full && needsSpace(call.key) ? 'ENOSPC' : undefined));
    const health = createHealthRegistry();
    const gate = { open: false };
    const writer = recordingWriter(async () => {
      while (!gate.open) await new Promise((r) => setTimeout(r, 5));
      return { status: 'ok' };
    });
    const q = queue(dir.path, writer, { files, health, segmentBytes: 200 });
    await q.start();
    for (const i of range(0, 10)) await q.append([part(i)]);
    disk.full = true;
    await expect(q.append([part(50)])).rejects.toThrow(/ENOSPC/);
    expect(health.component('queue')?.state).toBe('failed');
    // Storage takes the backlog; the consumer removes stored segments: space is seen again.
    gate.open = true;
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await expect.poll(() => health.component('queue')?.state, { timeout: 10_000 }).toBe('ready');
    expect(q.stalled).toBeUndefined();
    await q.shutdown();
    dir.cleanup();
  });

  it('waiting for storage is degraded, not failed: the strict readiness follows storage itself', async () => {
    const dir = tempDir();
    const health = createHealthRegistry();
    const storage = { ready: false };
    const q = createDurableQueue({
      path: dir.path,
      writer: downWriter(),
      storageReady: () => storage.ready,
      maxBytes: 1 << 20,
      segmentBytes: 4096,
      maxRows: 50,
      maxDelayMs: 5,
      refusedTimeoutMs: 200,
      deadLetterMaxBytes: 1 << 20,
      retry: { initialMs: 1, maxMs: 20 },
      logger: silentLogger(),
      metrics: new Registry(),
      health,
    });
    await q.start();
    await q.append([part(1)]);
    await expect.poll(() => health.component('queue')?.reason, { timeout: 10_000 }).toMatch(/storage unavailable, 1 records waiting/);
    expect(health.component('queue')?.state).toBe('degraded');
    expect(q.stalled).toBeUndefined();
    await q.shutdown();
    dir.cleanup();
  });

  it('damaged bytes whose dead-letter file cannot be written are counted as dropped and logged; the queue goes on', async () => {
    const dir = tempDir();
    await fill(dir.path, range(1, 11));
    const where = locate(dir.path, 4);
    flipByte(where.file, where.text);
    const files = faultyFiles((call) => (call.key.endsWith(':dead-letter') && /^(open-w|writev|mkdir)/.test(call.key) ? 'ENOSPC' : undefined));
    const metrics = new Registry();
    const writer = recordingWriter();
    const q = queue(dir.path, writer, { files, metrics });
    await q.start();
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.shutdown();
    expect(writer.stored).toEqual([1, 2, 3, 5, 6, 7, 8, 9, 10].map(line));
    expect(await metric(metrics, 'heimdall_exporter_queue_corrupt_records_total')).toBe(1);
    expect(await metrics.getSingleMetricAsString('heimdall_exporter_queue_dead_letter_dropped_total')).toMatch(/\{kind="damaged",reason="write_failed"\} 1$/m);
    dir.cleanup();
  });

  it('rows storage refuses whose dead-letter file cannot be written are retried for the refusal timeout, then dropped and counted; the queue goes on', async () => {
    const dir = tempDir();
    const files = faultyFiles((call) => (call.key.endsWith(':dead-letter') && /^(open-w|writev|mkdir)/.test(call.key) ? 'ENOSPC' : undefined));
    const metrics = new Registry();
    const health = createHealthRegistry();
    const writer = recordingWriter((call) => (call.lines.includes('{"i":"poison"}') ? { status: 'failed', error: new Error('Code: 27. Cannot parse input') } : { status: 'ok' }));
    const q = queue(dir.path, writer, { files, metrics, health, maxRows: 1, refusedTimeoutMs: 300 });
    await q.start();
    await q.append([{ table: 't', data: Buffer.from('{"i":"poison"}\n'), rows: 1 }]);
    await expect.poll(() => health.component('queue')?.reason, { timeout: 10_000 }).toMatch(/waiting for disk space: cannot write the dead-letter file: ENOSPC/);
    await q.append([part(7)]);
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.shutdown();
    expect(writer.stored).toEqual([line(7)]);
    expect(await metrics.getSingleMetricAsString('heimdall_exporter_queue_dead_letter_dropped_total')).toMatch(/\{kind="refused",reason="write_failed"\} 1$/m);
    dir.cleanup();
  });
});

describe('durable queue: a batch storage keeps refusing', () => {
  it('is split in halves down to the records storage refuses: those go to the dead-letter folder, the rest is stored once, also after a crash in the middle of splitting', async () => {
    const dir = tempDir();
    await fill(dir.path, range(1, 21));
    const refuse = (call: Call): WriteResult => (call.lines.includes(line(7)) ? refusedBy252() : { status: 'ok' });
    // First run: the process dies after four inserts of the split (the fifth never returns).
    let hang: (() => void) | undefined;
    const first = recordingWriter((call) => (first.calls.length <= 4 ? refuse(call) : new Promise<WriteResult>((resolve) => (hang = () => resolve({ status: 'failed', error: new Error('crashed') })))));
    first.shutdown = () => hang?.();
    const a = queue(dir.path, first, { maxRows: 100 });
    await a.start();
    await expect.poll(() => first.calls.length, { timeout: 10_000 }).toBe(5);
    // Second run, against the same ClickHouse (tokens it stored are dropped).
    const second = recordingWriter(refuse, first.tokens);
    const metrics = new Registry();
    const b = queue(dir.path, second, { maxRows: 100, metrics });
    await b.start();
    await expect.poll(() => b.depth, { timeout: 10_000 }).toBe(0);
    await b.shutdown();
    await a.shutdown();
    const stored = [...first.stored, ...second.stored];
    expect([...stored].sort()).toEqual(range(1, 21).filter((i) => i !== 7).map(line).sort());
    expect(stored.filter((l, k) => stored.indexOf(l) !== k)).toEqual([]);
    // The same plan splits the same way: the replay carries the first run's tokens.
    expect(second.calls.slice(0, 4).map((c) => c.token)).toEqual(first.calls.slice(0, 4).map((c) => c.token));
    expect(second.duplicates).toBe(1);
    expect(readdirSync(join(dir.path, 'dead-letter'))).toEqual(['7-7-t.jsonl']);
    expect(readFileSync(join(dir.path, 'dead-letter', '7-7-t.jsonl'), 'utf8')).toContain(JSON.stringify(`${line(7)}\n`).slice(1, -3));
    expect(await metric(metrics, 'heimdall_exporter_dead_letter_batches_total')).toBe(1);
    expect(await metric(metrics, 'heimdall_exporter_queue_split_batches_total')).toBeGreaterThanOrEqual(4);
    dir.cleanup();
  });

  it('keeps the dead-letter folder within its budget, removing the oldest files first', async () => {
    const dir = tempDir();
    const metrics = new Registry();
    const writer = recordingWriter((call) => (call.lines.some((l) => l.includes('poison')) ? { status: 'failed', error: new Error('Code: 27. Cannot parse input') } : { status: 'ok' }));
    const q = queue(dir.path, writer, { maxRows: 1, deadLetterMaxBytes: 400, metrics });
    await q.start();
    for (let i = 0; i < 8; i++) await q.append([{ table: 't', data: Buffer.from(`{"poison":${i},"pad":"${'x'.repeat(40)}"}\n`), rows: 1 }]);
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.shutdown();
    const files = readdirSync(join(dir.path, 'dead-letter')).sort((x, y) => Number(x.split('-')[0]) - Number(y.split('-')[0]));
    const bytes = files.reduce((n, f) => n + statSync(join(dir.path, 'dead-letter', f)).size, 0);
    expect(bytes).toBeLessThanOrEqual(400);
    expect(files.length).toBeLessThan(8);
    // The newest are kept.
    expect(files.at(-1)).toBe('8-8-t.jsonl');
    expect(await metric(metrics, 'heimdall_exporter_queue_dead_letter_removed_total')).toBe(8 - files.length);
    expect(await metric(metrics, 'heimdall_exporter_queue_dead_letter_bytes')).toBe(bytes);
    dir.cleanup();
  });
});

describe('durable queue: an upgrade from the previous version on a full disk', () => {
  /** A queue directory of the previous version: state.json, and segments of `perSegment` version 1 records 1..n. */
  function legacyQueue(dir: string, n: number, perSegment: number): void {
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ id: 'old-id', committed: '0' }));
    for (let first = 1; first <= n; first += perSegment) {
      writeFileSync(join(dir, segmentName(BigInt(first))), Buffer.concat(range(first, Math.min(n + 1, first + perSegment)).map((i) => v1Record(BigInt(i), i))));
    }
  }

  it('drains without a checkpoint file (batches cut the same way every time), a crash included, then creates it once space is freed', async () => {
    const dir = tempDir();
    legacyQueue(dir.path, 15, 5);
    const disk = { full: true };
    const files = () => faultyFiles((call) => (disk.full && needsSpace(call.key) ? 'ENOSPC' : undefined));
    // First run: dies after three inserts.
    let hang: (() => void) | undefined;
    const first = recordingWriter(() => (first.calls.length <= 3 ? { status: 'ok' } : new Promise<WriteResult>((resolve) => (hang = () => resolve({ status: 'failed', error: new Error('crashed') })))));
    first.shutdown = () => hang?.();
    const health = createHealthRegistry();
    const a = queue(dir.path, first, { files: files(), maxRows: 2, health });
    await a.start();
    await expect.poll(() => first.calls.length, { timeout: 10_000 }).toBe(4);
    expect(health.component('queue')?.reason).toMatch(/waiting for disk space: cannot create the checkpoint: ENOSPC; draining the oldest segments without it/);
    expect(health.component('queue')?.state).toBe('degraded');
    // Second run, the disk still full: drains everything; each batch stored once (replays carry the same tokens).
    const second = recordingWriter(undefined, first.tokens);
    const b = queue(dir.path, second, { files: files(), maxRows: 2 });
    await b.start();
    await expect.poll(() => b.depth, { timeout: 10_000 }).toBe(0);
    const stored = [...first.stored, ...second.stored];
    expect(stored.filter((l, k) => stored.indexOf(l) !== k)).toEqual([]);
    expect([...stored].sort()).toEqual(range(1, 16).map(line).sort());
    // The batch in flight when the first run died comes first, with the same token.
    expect(second.calls[0]?.token).toBe(first.calls[3]?.token);
    // Space is back: the checkpoint is created, the files of the previous version removed; a restart stores nothing again.
    disk.full = false;
    await b.append([part(100)]);
    await expect.poll(() => b.depth, { timeout: 10_000 }).toBe(0);
    await b.shutdown();
    await a.shutdown();
    expect(existsSync(join(dir.path, 'checkpoint'))).toBe(true);
    expect(existsSync(join(dir.path, 'state.json'))).toBe(false);
    const again = await drain(dir.path);
    expect(again.writer.stored).toEqual([]);
    dir.cleanup();
  });

  it.runIf(canMountTmpfs())('drains a queue of the previous version that filled a real disk (1 MiB tmpfs)', async () => {
    const disk = mountTmpfs('1m');
    try {
      const dir = join(disk.path, 'queue');
      mkdirSync(dir);
      writeFileSync(join(dir, 'state.json'), JSON.stringify({ id: 'old-id', committed: '0' }));
      let seq = 1;
      try {
        for (;;) {
          const name = join(dir, segmentName(BigInt(seq)));
          for (let k = 0; k < 60; k++, seq++) appendFileSync(name, v1Record(BigInt(seq), seq, `{"i":${seq},"pad":"${'x'.repeat(1000)}"}\n`));
        }
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      const written = seq - 1;
      expect(written).toBeGreaterThan(500);
      const writer = recordingWriter();
      const q = queue(dir, writer, { segmentBytes: 1 << 20, maxBytes: 64 << 20 });
      await q.start();
      await expect.poll(() => q.depth, { timeout: 20_000 }).toBe(0);
      await expect.poll(() => existsSync(join(dir, 'checkpoint')), { timeout: 10_000 }).toBe(true);
      await q.append([part(1_000_000)]);
      await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
      await q.shutdown();
      // Every record but the one the full disk cut short is stored once.
      const ids = writer.stored.map((l) => (JSON.parse(l) as { i: number }).i);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.filter((i) => i < 1_000_000).length).toBeGreaterThanOrEqual(written - 1);
    } finally {
      disk.unmount();
    }
  }, 60_000);
});

describe('durable queue: what it reads back that is not a good record', () => {
  it('a record with valid checksums but a malformed payload is damage, not a reason to retry forever', async () => {
    const dir = tempDir();
    await fill(dir.path, range(1, 4));
    const last = join(dir.path, segmentFiles(dir.path).at(-1) ?? '');
    const salt = headerSalt(readFileSync(last))?.salt;
    if (!salt) throw new Error('no salt');
    appendFileSync(last, Buffer.concat(encodeRecord(4n, Buffer.from('garbage'), formatFor(salt, segmentFirst(basename(last))))));
    const { writer, metrics } = await drain(dir.path);
    expect(writer.stored).toEqual(range(1, 4).map(line));
    expect(await metric(metrics, 'heimdall_exporter_queue_corrupt_records_total')).toBe(1);
    expect(readdirSync(join(dir.path, 'dead-letter'))).toHaveLength(1);
    dir.cleanup();
  });

  it('damage is counted once: a restart that reads it again (its segment still queued) does not count it again', async () => {
    const dir = tempDir();
    await fill(dir.path, range(1, 11), { segmentBytes: 1 << 20 });
    const where = locate(dir.path, 2);
    flipByte(where.file, where.text + 1);
    // First run: stores one batch past the damage (records 1, 3, 4), then dies: the segment stays queued.
    const first = new Registry();
    let crash: (() => void) | undefined;
    const hung = recordingWriter(() => (hung.calls.length === 1 ? { status: 'ok' } : new Promise<WriteResult>((resolve) => (crash = () => resolve({ status: 'failed', error: new Error('crashed') })))));
    hung.shutdown = () => crash?.();
    const a = queue(dir.path, hung, { maxRows: 3, metrics: first });
    await a.start();
    await expect.poll(() => hung.calls.length).toBe(2);
    expect(hung.stored).toEqual([1, 3, 4].map(line));
    expect(await metric(first, 'heimdall_exporter_queue_corrupt_records_total')).toBe(1);
    const again = await drain(dir.path, { maxRows: 3 });
    expect(again.writer.stored).toEqual(range(5, 11).map(line));
    expect(await metric(again.metrics, 'heimdall_exporter_queue_corrupt_records_total')).toBe(0);
    expect(readdirSync(join(dir.path, 'dead-letter'))).toHaveLength(1);
    await a.shutdown();
    dir.cleanup();
  });

  it('a segment header damaged in both copies costs no record: zeroed, or its first 512 bytes zeroed (the first record with it)', async () => {
    for (const zeroed of [SEGMENT_HEADER_BYTES, 512]) {
      const dir = tempDir();
      const ids = range(1, 81);
      await fill(dir.path, ids, { segmentBytes: 1200 });
      const names = segmentFiles(dir.path);
      expect(names.length).toBeGreaterThanOrEqual(3);
      const lost: number[] = [];
      const at = new Map(ids.map((i) => [i, locate(dir.path, i)]));
      // A middle segment and the last one.
      for (const name of [names[1], names.at(-1)]) {
        const file = join(dir.path, name ?? '');
        const data = readFileSync(file);
        lost.push(...ids.filter((i) => at.get(i)?.file === file && (at.get(i)?.start ?? 0) < zeroed));
        data.fill(0, 0, zeroed);
        writeFileSync(file, data);
      }
      const { writer } = await drain(dir.path, { segmentBytes: 1200 });
      expect(writer.stored, `${zeroed} bytes zeroed`).toEqual(ids.filter((i) => !lost.includes(i)).map(line));
      expect(lost.length === 0).toBe(zeroed === SEGMENT_HEADER_BYTES);
      dir.cleanup();
    }
  });

  it('never fails to start on its files: a segment that cannot be read (EIO) and a broken state.json; the rest is stored', async () => {
    const dir = tempDir();
    await fill(dir.path, range(1, 31), { segmentBytes: 400 });
    const names = segmentFiles(dir.path);
    const bad = join(dir.path, names[1] ?? '');
    const lost = range(1, 31).filter((i) => locate(dir.path, i).file === bad);
    rmSync(join(dir.path, 'checkpoint'));
    writeFileSync(join(dir.path, 'state.json'), '{"id": "old", "comm');
    const files = faultyFiles((call) => (call.path === bad && call.key.startsWith('read') ? 'EIO' : undefined));
    const { writer, metrics } = await drain(dir.path, { segmentBytes: 400, files });
    expect(writer.stored).toEqual(range(1, 31).filter((i) => !lost.includes(i)).map(line));
    expect(await metrics.getSingleMetricAsString('heimdall_exporter_queue_dead_letter_dropped_total')).toMatch(/\{kind="damaged",reason="unreadable"\} 1$/m);
    expect(existsSync(join(dir.path, 'state.json.damaged'))).toBe(true);
    dir.cleanup();
  });

  it.runIf(canMountTmpfs())('a disk filled while storage was down, plus a flipped payload byte: drains all but the damaged record (a real 1 MiB tmpfs)', async () => {
    const disk = mountTmpfs('1m');
    try {
      const dir = join(disk.path, 'queue');
      const big = (i: number) => ({ table: 't', rows: 1, data: Buffer.from(`{"i":${i},"pad":"${'x'.repeat(1000)}"}\n`) });
      const a = queue(dir, downWriter(), { segmentBytes: 128 << 10, maxDelayMs: 60_000 });
      await a.start();
      let acked = 0;
      for (;;) {
        const ok = await a.append([big(acked)]).then(
          () => true,
          () => false,
        );
        if (!ok) break;
        acked += 1;
      }
      await a.shutdown();
      expect(acked).toBeGreaterThan(500);
      const first = join(dir, segmentFiles(dir)[0] ?? '');
      const data = readFileSync(first);
      const victim = data.indexOf('{"i":2,');
      data[victim + 500] = (data[victim + 500] ?? 0) ^ 4;
      writeFileSync(first, data);
      const metrics = new Registry();
      const writer = recordingWriter();
      const b = queue(dir, writer, { segmentBytes: 128 << 10, metrics });
      await b.start();
      await expect.poll(() => b.depth, { timeout: 20_000 }).toBe(0);
      await b.shutdown();
      const ids = writer.stored.map((l) => (JSON.parse(l) as { i: number }).i);
      expect(ids).toEqual(range(0, acked).filter((i) => i !== 2));
      expect(await metric(metrics, 'heimdall_exporter_queue_corrupt_records_total')).toBe(1);
    } finally {
      disk.unmount();
    }
  }, 60_000);
});
