/** The durable queue's own logic, on real files, with a writer that records what it is given. */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createDurableQueue } from '../../../src/ingest/pipeline/queue.js';
import { segmentName } from '../../../src/ingest/pipeline/wal.js';
import type { Writer, WriteResult } from '../../../src/ingest/pipeline/writer.js';
import { silentLogger, tempDir } from '../../support/temp.js';

interface Call {
  table: string;
  lines: string[];
  token: string;
}

function recordingWriter(decide: (call: Call) => Promise<WriteResult> | WriteResult = () => ({ status: 'ok' })): Writer & { calls: Call[]; stored: string[] } {
  const calls: Call[] = [];
  const stored: string[] = [];
  return {
    calls,
    stored,
    async write(table, payload, _rows, token) {
      const call = { table, lines: payload.toString().split('\n').filter(Boolean), token };
      calls.push(call);
      const result = await decide(call);
      if (result.status === 'ok') stored.push(...call.lines);
      return result;
    },
    shutdown() {},
  };
}

const queue = (path: string, writer: Writer, overrides: Partial<{ segmentBytes: number; maxBytes: number; maxRows: number }> = {}) =>
  createDurableQueue({ path, writer, maxBytes: 64 << 20, segmentBytes: 4096, maxRows: 50, maxDelayMs: 5, logger: silentLogger(), metrics: new Registry(), ...overrides });

const part = (i: number) => ({ table: 't', data: Buffer.from(`{"i":${i}}\n`), rows: 1 });

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
    const expected = Array.from({ length: 40 }, (_, wave) => Array.from({ length: 1 + (wave % 9) }, (_, k) => `{"i":${wave * 10 + k}}`)).flat();
    expect(writer.stored).toEqual(expected);
    // Stored segments are released: only the last one or two remain.
    expect(readdirSync(dir.path).filter((n) => n.endsWith('.wal')).length).toBeLessThanOrEqual(2);
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
    expect(existsSync(join(dir.path, 'plan.json'))).toBe(true);

    const writer = recordingWriter();
    const b = queue(dir.path, writer);
    await b.start();
    await expect.poll(() => b.depth, { timeout: 10_000 }).toBe(0);
    await b.append([part(10)]);
    await expect.poll(() => b.depth).toBe(0);
    await b.shutdown();
    expect(writer.calls[0]?.token).toBe(firstToken);
    expect(writer.calls[0]?.lines).toEqual(firstLines);
    expect(writer.stored).toEqual(Array.from({ length: 11 }, (_, i) => `{"i":${i}}`));
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
    expect(writer.stored).toEqual(['{"i":2}', '{"i":3}', '{"i":4}', '{"i":5}']);
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
    expect(writer.stored).toEqual(['{"i":7}']);
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
    expect(writer.stored).toContain('{"i":999}');
    dir.cleanup();
  });
});
