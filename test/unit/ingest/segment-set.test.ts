import { appendFileSync, readdirSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { writeAll } from '../../../src/ingest/pipeline/queue-files.js';
import { createSegmentSet } from '../../../src/ingest/pipeline/segment-set.js';
import { newSalt, SEGMENT_HEADER_BYTES, segmentName } from '../../../src/ingest/pipeline/wal.js';
import { faultyFiles } from '../../support/faulty-files.js';
import { silentLogger, tempDir } from '../../support/temp.js';

const names = (dir: string) => readdirSync(dir).sort();

describe('segment set', () => {
  it('rotation makes a durable segment with its header and seals the previous one; a failed rotation leaves no file', async () => {
    const dir = tempDir();
    let fail = false;
    const files = faultyFiles((c) => (fail && c.key === 'datasync:segment' ? 'EIO' : undefined));
    const set = createSegmentSet({ dir: dir.path, files, logger: silentLogger(), onRemoved: () => undefined });
    expect(set.start(7n)).toEqual({ first: 7n, offset: 0, seq: 6n });
    const salt = newSalt();
    const a = await set.rotate(1n, salt);
    expect(statSync(a.path).size).toBe(SEGMENT_HEADER_BYTES);
    expect(set.active).toBe(a);
    expect(files.calls.map((c) => c.key)).toEqual(['open-w:segment', 'writev:segment', 'datasync:segment', 'fsyncDir:dir']);
    const b = await set.rotate(5n, salt);
    expect(a.file).toBeUndefined();
    expect(set.active).toBe(b);
    fail = true;
    await expect(set.rotate(9n, salt)).rejects.toThrow(/EIO/);
    expect(set.active).toBeUndefined();
    expect(names(dir.path)).toEqual([segmentName(1n), segmentName(5n)]);
    expect(set.bytes).toBe(2 * SEGMENT_HEADER_BYTES);
    dir.cleanup();
  });

  it('cutBack truncates a failed append to the durable size and seals the segment', async () => {
    const dir = tempDir();
    const set = createSegmentSet({ dir: dir.path, files: faultyFiles(), logger: silentLogger(), onRemoved: () => undefined });
    const s = await set.rotate(1n, newSalt());
    await writeAll(s.file!, [Buffer.from('half a record')], s.size);
    expect(statSync(s.path).size).toBe(SEGMENT_HEADER_BYTES + 13);
    await set.cutBack(s);
    expect(statSync(s.path).size).toBe(SEGMENT_HEADER_BYTES);
    expect(s.file).toBeUndefined();
    expect(set.active).toBeUndefined();
    dir.cleanup();
  });

  it('locate moves past read and released segments; release removes only passed, committed, sealed segments', async () => {
    const dir = tempDir();
    const removed: string[] = [];
    const set = createSegmentSet({ dir: dir.path, files: faultyFiles(), logger: silentLogger(), onRemoved: (n) => removed.push(n) });
    const salt = newSalt();
    const a = await set.rotate(1n, salt);
    const b = await set.rotate(4n, salt);
    // Pretend three records of 10 bytes went to `a` and one to `b` (durable sizes).
    appendFileSync(a.path, Buffer.alloc(30));
    a.size += 30;
    a.last = 3n;
    appendFileSync(b.path, Buffer.alloc(10));
    b.size += 10;
    b.last = 4n;
    const start = set.start(5n);
    expect(start).toEqual({ first: 1n, offset: SEGMENT_HEADER_BYTES, seq: 0n });
    expect(set.locate(start)).toEqual({ from: start, segment: a, sealed: true });
    // At the end of `a`: on to `b`, which is still appended to.
    const endOfA = { first: 1n, offset: a.size, seq: 3n };
    const inB = { first: 4n, offset: SEGMENT_HEADER_BYTES, seq: 3n };
    expect(set.locate(endOfA)).toEqual({ from: inB, segment: b, sealed: false });
    expect(set.locate({ first: 4n, offset: b.size, seq: 4n })).toEqual({ from: { first: 4n, offset: b.size, seq: 4n }, segment: undefined, sealed: false });
    // Not passed, or not committed: kept.
    expect(await set.release(start, 4n)).toBe(false);
    expect(await set.release(endOfA, 2n)).toBe(false);
    expect(await set.release(endOfA, 3n)).toBe(true);
    expect(removed).toEqual([a.name]);
    expect(names(dir.path)).toEqual([b.name]);
    // A position in a released segment reads on from the next one.
    expect(set.locate(start).from).toEqual(inB);
    // The active segment is never released.
    expect(await set.release({ first: 4n, offset: b.size, seq: 4n }, 4n)).toBe(false);
    await set.close();
    expect(b.file).toBeUndefined();
    dir.cleanup();
  });
});
