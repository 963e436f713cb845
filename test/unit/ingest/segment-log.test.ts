import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSegmentLog, type SegmentLog } from '../../../src/ingest/pipeline/segment-log.js';
import type { Position } from '../../../src/ingest/pipeline/segment-reader.js';
import { encodeRecord, formatFor, headerSalt, segmentFirst, segmentName } from '../../../src/ingest/pipeline/wal.js';
import { faultyFiles, type FaultyFiles } from '../../support/faulty-files.js';
import { silentLogger, tempDir } from '../../support/temp.js';

const log = (dir: string, files: FaultyFiles = faultyFiles(), segmentBytes = 300) => createSegmentLog({ dir, files, segmentBytes, logger: silentLogger(), onDurable: () => undefined });

/** Reads everything from `pos`: payload texts, and damaged regions as `damage <start>-<end>`. */
async function readAll(l: SegmentLog, pos: Position = l.start): Promise<{ items: string[]; end: Position }> {
  const items: string[] = [];
  for (;;) {
    const { from, items: got } = await l.read(pos);
    pos = from;
    if (got.length === 0) return { items, end: pos };
    for (const it of got) {
      items.push(it.kind === 'record' ? `${it.record.seq}:${it.record.payload.toString()}` : `damage ${it.damage.start}-${it.damage.end}`);
      pos = it.next;
    }
  }
}

const segments = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.wal')).sort();

describe('segment log', () => {
  it('appends, rotates, reads back in order across segments, and releases only what the reader passed and is committed', async () => {
    const dir = tempDir();
    const l = log(dir.path);
    await l.recover(0n, undefined);
    for (let i = 1; i <= 20; i++) await l.append(Buffer.from(`record-${i}`));
    expect(l.durableSeq).toBe(20n);
    expect(segments(dir.path).length).toBeGreaterThan(2);
    const { items, end } = await readAll(l);
    expect(items).toEqual(Array.from({ length: 20 }, (_, i) => `${i + 1}:record-${i + 1}`));
    const before = segments(dir.path);
    // Committed but not passed, or passed but not committed: nothing goes.
    await l.release(l.start, 20n);
    await l.release(end, 3n);
    expect(segments(dir.path)).toEqual(before);
    // Passed and committed: every segment but the one appended to goes.
    await l.release(end, 20n);
    expect(segments(dir.path)).toEqual([before.at(-1)]);
    await l.close();
    dir.cleanup();
  });

  it('a failed append is cut back to the last whole record (never extended), and the next append starts a new segment', async () => {
    const dir = tempDir();
    let fault: 'short-then-full' | 'fsync' | undefined;
    let n = 0;
    const files = faultyFiles((c) => {
      if (!fault) return undefined;
      // The new segment's header is synced; the record's fdatasync fails.
      if (fault === 'fsync') return c.key === 'datasync:segment' && n++ === 1 ? 'EIO' : undefined;
      if (c.key !== 'writev:segment') return undefined;
      return n++ === 0 ? 'short' : 'ENOSPC';
    });
    const l = log(dir.path, files, 1 << 20);
    await l.recover(0n, undefined);
    await l.append(Buffer.from('one'));
    const first = join(dir.path, segmentName(1n));
    const size = statSync(first).size;
    fault = 'short-then-full';
    await expect(l.append(Buffer.from('two'.repeat(50)))).rejects.toThrow(/ENOSPC/);
    expect(statSync(first).size).toBe(size);
    fault = 'fsync';
    n = 0;
    await expect(l.append(Buffer.from('three'))).rejects.toThrow(/EIO/);
    fault = undefined;
    await l.append(Buffer.from('four'));
    // The failed appends' numbers are not reused; every file holds only whole records.
    expect((await readAll(l)).items).toEqual(['1:one', '4:four']);
    await l.close();
    const again = log(dir.path);
    await again.recover(0n, undefined);
    expect((await readAll(again)).items).toEqual(['1:one', '4:four']);
    dir.cleanup();
  });

  it('recovers: cuts a torn write off the last segment only; keeps damage (anywhere) for the reader; numbers new records past the floor', async () => {
    const dir = tempDir();
    const a = log(dir.path);
    await a.recover(0n, undefined);
    for (let i = 1; i <= 12; i++) await a.append(Buffer.from(`record-${i}`));
    await a.close();
    const names = segments(dir.path);
    const firstSeg = join(dir.path, names[0] ?? '');
    const lastSeg = join(dir.path, names.at(-1) ?? '');
    // Garbage at the end of the first segment (not a torn write: it was sealed), a torn write at the end of the last.
    const firstSize = statSync(firstSeg).size;
    appendFileSync(firstSeg, Buffer.from('garbage that is no record at all'));
    const lastData = readFileSync(lastSeg);
    const lastSize = lastData.length;
    const salt = headerSalt(lastData)?.salt;
    if (!salt) throw new Error('expected a version 2 segment');
    const format = formatFor(salt, segmentFirst(names.at(-1) ?? ''));
    appendFileSync(lastSeg, Buffer.concat(encodeRecord(13n, Buffer.from('record-13'), format)).subarray(0, 30));
    writeFileSync(join(dir.path, segmentName(999n)), ''); // created, never written

    const b = log(dir.path);
    await b.recover(500n, undefined);
    expect(statSync(lastSeg).size).toBe(lastSize);
    expect(statSync(firstSeg).size).toBe(firstSize + 32);
    expect(segments(dir.path)).toEqual(names);
    const { items } = await readAll(b);
    expect(items).toContain(`damage ${firstSize}-${firstSize + 32}`);
    expect(items.filter((i) => !i.startsWith('damage'))).toEqual(Array.from({ length: 12 }, (_, i) => `${i + 1}:record-${i + 1}`));
    await b.append(Buffer.from('next'));
    expect(b.durableSeq).toBe(1000n); // past the floor and past every segment's name
    await b.close();
    dir.cleanup();
  });

  it('opens a backlog reading only the segment headers and the last segment; a segment that cannot be read fails nothing at start', async () => {
    const dir = tempDir();
    const a = log(dir.path);
    await a.recover(0n, undefined);
    for (let i = 1; i <= 40; i++) await a.append(Buffer.from(`record-${i}`.padEnd(100, '.')));
    await a.close();
    const names = segments(dir.path);
    expect(names.length).toBeGreaterThanOrEqual(8);

    const files = faultyFiles();
    const b = log(dir.path, files);
    await b.recover(0n, undefined);
    const reads = files.calls.filter((c) => c.key === 'readFile:segment' || c.key === 'read:segment');
    // One whole read (the last segment), one header read per other segment.
    expect(reads.filter((c) => c.key === 'readFile:segment')).toHaveLength(1);
    expect(reads.filter((c) => c.key === 'read:segment')).toHaveLength(names.length - 1);
    expect(b.durableSeq).toBe(40n);
    const { items } = await readAll(b);
    expect(items).toHaveLength(40);

    // Every read of one sealed segment fails with EIO: recovery goes on; the reader gets its records
    // up to it, then (after three failed reads) one unreadable region, then the records after it.
    const bad = join(dir.path, names[2] ?? '');
    const c = log(dir.path, faultyFiles((call) => (call.path === bad && call.key.startsWith('read') ? 'EIO' : undefined)));
    await c.recover(0n, undefined);
    const got: string[] = [];
    let pos = c.start;
    for (let tries = 0; tries < 100; tries++) {
      const r = await c.read(pos).catch((err: unknown) => ({ error: err as Error }));
      if ('error' in r) {
        expect(r.error.message).toMatch(/EIO/);
        continue;
      }
      pos = r.from;
      if (r.items.length === 0) break;
      for (const it of r.items) {
        got.push(it.kind === 'record' ? it.record.payload.toString().replace(/\.+$/, '') : `unreadable ${it.damage.bytes === undefined}`);
        pos = it.next;
      }
    }
    const before = segmentFirst(names[2] ?? '') - 1n;
    const after = segmentFirst(names[3] ?? '');
    expect(got).toEqual([...Array.from({ length: Number(before) }, (_, i) => `record-${i + 1}`), 'unreadable true', ...Array.from({ length: 40 - Number(after) + 1 }, (_, i) => `record-${Number(after) + i}`)]);
    await c.close();
    dir.cleanup();
  });
});
