import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createBatchReader, planBatch, type Batch } from '../../../src/ingest/pipeline/batch-reader.js';
import { createDeadLetter } from '../../../src/ingest/pipeline/dead-letter.js';
import { createSegmentLog } from '../../../src/ingest/pipeline/segment-log.js';
import { encodeParts } from '../../../src/ingest/pipeline/wal.js';
import { faultyFiles } from '../../support/faulty-files.js';
import { silentLogger, tempDir } from '../../support/temp.js';

/** A payload of `rows` rows of one table. */
const payload = (rows: number, text = 'x'): Buffer => encodeParts([{ table: 'heimdall_logs', rows, data: Buffer.from(`${text}\n`.repeat(rows)) }]);

async function setup(segmentBytes = 1 << 20) {
  const dir = tempDir();
  const files = faultyFiles();
  const log = createSegmentLog({ dir: dir.path, files, segmentBytes, logger: silentLogger(), onDurable: () => undefined });
  await log.recover(0n, undefined);
  const deadLetter = createDeadLetter({ dir: dir.path, files, maxBytes: 1 << 20, logger: silentLogger(), metrics: new Registry() });
  await deadLetter.start();
  return { dir, log, reader: createBatchReader({ log, deadLetter, maxRows: 5 }) };
}

const seqs = (b: Batch): bigint[] => b.records.map((r) => r.seq);

describe('batch reader', () => {
  it('reads up to maxRows rows past the committed mark (a record is never cut), or exactly up to a plan; the position can be set back', async () => {
    const { dir, log, reader } = await setup();
    for (let i = 0; i < 6; i++) await log.append(payload(2));
    const start = reader.position;
    const first = await reader.read(1n);
    // Records 2, 3, 4 (6 rows: the third starts under maxRows).
    expect(seqs(first)).toEqual([2n, 3n, 4n]);
    expect(first.rows).toBe(6);
    expect(seqs(await reader.read(4n))).toEqual([5n, 6n]);
    expect(seqs(await reader.read(6n))).toEqual([]);
    reader.position = start;
    expect(seqs(await reader.read(0n, { upTo: 4n }))).toEqual([1n, 2n, 3n, 4n]);
    await log.close();
    dir.cleanup();
  });

  it('a malformed payload (checksums fine) goes to the dead-letter folder and reading goes on', async () => {
    const { dir, log, reader } = await setup();
    await log.append(payload(1));
    await log.append(Buffer.from('not parts'));
    await log.append(payload(1));
    expect(seqs(await reader.read(0n))).toEqual([1n, 3n]);
    expect(readdirSync(join(dir.path, 'dead-letter'))).toEqual([expect.stringMatching(/^damaged-seg-\d+\.wal-\d+-\d+\.bin$/)]);
    await log.close();
    dir.cleanup();
  });

  it('oneSegment reads only a sealed segment, and says whether another sealed one follows', async () => {
    const { dir, log, reader } = await setup(200);
    for (let i = 0; i < 6; i++) await log.append(payload(1, 'a'.repeat(60)));
    const batches: bigint[][] = [];
    for (let more = true; more; ) {
      const b = await reader.read(0n, { oneSegment: true });
      batches.push(seqs(b));
      more = b.more;
    }
    // Segments of two records each: the read of the second says no more, the third is still appended to.
    expect(batches).toEqual([[1n, 2n], [3n, 4n]]);
    expect(seqs(await reader.read(0n, { oneSegment: true }))).toEqual([]);
    expect(seqs(await reader.read(0n))).toEqual([5n, 6n]);
    await log.close();
    dir.cleanup();
  });
});

describe('planBatch', () => {
  const batch = (...s: bigint[]): Batch => ({ records: s.map((seq) => ({ seq, parts: [] })), rows: s.length, more: false });
  it('plans the records read; with none, skips past damage up to the horizon, or (no checkpoint file) goes on while there is more', () => {
    expect(planBatch(batch(3n, 4n, 9n), { fixedCut: false, horizon: 9n, committed: 2n })).toEqual({ kind: 'deliver', plan: { from: 3n, to: 9n } });
    expect(planBatch(batch(), { fixedCut: false, horizon: 9n, committed: 2n })).toEqual({ kind: 'none', more: false, skipTo: 9n });
    expect(planBatch(batch(), { fixedCut: false, horizon: 2n, committed: 2n })).toEqual({ kind: 'none', more: false, skipTo: undefined });
    expect(planBatch({ ...batch(), more: true }, { fixedCut: true, horizon: 9n, committed: 2n })).toEqual({ kind: 'none', more: true, skipTo: undefined });
  });
});
