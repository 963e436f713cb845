/** The durable queue's own logic, on real files, with a writer that records what it is given. */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry, type HealthRegistry } from '../../../src/health/registry.js';
import { RetryableError } from '../../../src/ingest/pipeline/errors.js';
import { createDurableQueue, type DurableQueue } from '../../../src/ingest/pipeline/queue.js';
import type { QueueFiles } from '../../../src/ingest/pipeline/queue-files.js';
import { crc32, encodeParts, HEADER_BYTES, segmentName } from '../../../src/ingest/pipeline/wal.js';
import type { Writer, WriteResult } from '../../../src/ingest/pipeline/writer.js';
import { faultyFiles, type FileCall } from '../../support/faulty-files.js';
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
function recordingWriter(decide: (call: Call) => Promise<WriteResult> | WriteResult = () => ({ status: 'ok' })): Writer & { calls: Call[]; stored: string[]; duplicates: number } {
  const calls: Call[] = [];
  const stored: string[] = [];
  const tokens = new Set<string>();
  const w = {
    calls,
    stored,
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

/** Appends records `ids` one by one with storage down, then shuts the queue down: a queue directory full of data. */
async function fill(dir: string, ids: number[], overrides: QueueOverrides = {}): Promise<void> {
  const q = queue(dir, downWriter(), overrides);
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
    release?.();
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
    expect(writer.calls.filter((c) => c.lines.includes('{"i":"poison"}'))).toHaveLength(3);
    expect(writer.stored).toEqual([line(7)]);
    const dead = readdirSync(join(dir.path, 'dead-letter'));
    expect(dead).toEqual(['1-1.jsonl']);
    expect(readFileSync(join(dir.path, 'dead-letter', '1-1.jsonl'), 'utf8')).toContain('poison');
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
  /** A record as the previous version wrote it: u32 length, u32 CRC-32 of the payload, u64 sequence number, payload. */
  const v1Record = (seq: bigint, i: number): Buffer => {
    const payload = encodeParts([part(i)]);
    const h = Buffer.alloc(16);
    h.writeUInt32LE(payload.length, 0);
    h.writeUInt32LE(crc32(payload), 4);
    h.writeBigUInt64LE(seq, 8);
    return Buffer.concat([h, payload]);
  };

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
  /** Calls that need free space: on a full disk they fail with ENOSPC (a writev first writes what fits). In-place checkpoint writes do not. */
  const needsSpace = (key: string) => /^(writev:(segment|checkpoint-tmp|dead-letter)|open-w:|mkdir:dead-letter)/.test(key);
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

  it('a checkpoint that cannot be written stops nothing for good: the queue says why it waits, retries with backoff, and drains once space is back', async () => {
    const dir = tempDir();
    // Records queued, no batch planned yet (no checkpoint on disk); then a restart on a full disk.
    await fill(dir.path, range(0, 10), { maxDelayMs: 60_000 });
    expect(existsSync(join(dir.path, 'checkpoint'))).toBe(false);
    const disk = { full: true };
    const files = faultyFiles((call) => (disk.full && needsSpace(call.key) ? 'ENOSPC' : undefined));
    const health = createHealthRegistry();
    const writer = recordingWriter();
    const q = queue(dir.path, writer, { files, health });
    await q.start();
    await expect.poll(() => health.component('queue')?.reason, { timeout: 10_000 }).toMatch(/^waiting for disk space: cannot write the checkpoint \(plan a batch\): ENOSPC; retrying in \d+ m?s$/);
    expect(health.component('queue')?.state).toBe('degraded');
    expect(q.stalled).toMatch(/ENOSPC/);
    expect(q.depth).toBe(10);
    // Appends are refused while the disk is full, and say why.
    await expect(q.append([part(50)])).rejects.toThrow(/durable queue write failed: ENOSPC/);
    expect(health.component('queue')?.reason).toMatch(/waiting for disk space: appends fail: ENOSPC/);
    disk.full = false;
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.append([part(51)]);
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await expect.poll(() => health.component('queue')?.state, { timeout: 10_000 }).toBe('ready');
    expect(q.stalled).toBeUndefined();
    await q.shutdown();
    expect(writer.stored).toEqual([...range(0, 10), 51].map(line));
    dir.cleanup();
  });

  it('a dead-letter folder that cannot be written holds the consumer (nothing is dropped), which goes on once it can', async () => {
    const dir = tempDir();
    await fill(dir.path, range(1, 11));
    const where = locate(dir.path, 4);
    flipByte(where.file, where.text);
    const disk = { full: true };
    const files = faultyFiles((call) => (disk.full && call.key.endsWith(':dead-letter') && /^(open-w|writev|mkdir)/.test(call.key) ? 'ENOSPC' : undefined));
    const health = createHealthRegistry();
    const writer = recordingWriter();
    const q = queue(dir.path, writer, { files, health });
    await q.start();
    await expect.poll(() => health.component('queue')?.reason, { timeout: 10_000 }).toMatch(/^waiting for disk space: cannot write the dead-letter file: ENOSPC; retrying in/);
    expect(writer.stored).toEqual([]);
    disk.full = false;
    await expect.poll(() => q.depth, { timeout: 10_000 }).toBe(0);
    await q.shutdown();
    expect(writer.stored).toEqual([1, 2, 3, 5, 6, 7, 8, 9, 10].map(line));
    expect(readdirSync(join(dir.path, 'dead-letter'))).toHaveLength(1);
    dir.cleanup();
  });
});
