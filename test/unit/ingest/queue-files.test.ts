import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ShortWriteError, writeAll, writeFileAtomic, type QueueFile } from '../../../src/ingest/pipeline/queue-files.js';
import { faultyFiles } from '../../support/faulty-files.js';
import { tempDir } from '../../support/temp.js';

describe('queue files', () => {
  it('writeAll writes the rest after short writes, across buffer boundaries', async () => {
    const dir = tempDir();
    const files = faultyFiles((c) => (c.key === 'writev:dir' && c.occurrence % 2 === 0 ? 'short' : undefined));
    const file = await files.open(join(dir.path, 'f'), 'w');
    const bufs = [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('defghij'), Buffer.from('k')];
    await writeAll(file, bufs, 2);
    await file.close();
    expect(readFileSync(join(dir.path, 'f')).subarray(2).toString()).toBe('abcdefghijk');
    dir.cleanup();
  });

  it('writeAll throws when a write makes no progress (it never reports a partial write as done)', async () => {
    const stuck: QueueFile = { writev: async () => 0, datasync: async () => undefined, truncate: async () => undefined, read: async () => 0, size: async () => 0, close: async () => undefined };
    await expect(writeAll(stuck, [Buffer.from('x')], 0)).rejects.toBeInstanceOf(ShortWriteError);
  });

  it('writeFileAtomic leaves the previous file when any step fails', async () => {
    const dir = tempDir();
    let failing: string | undefined;
    const files = faultyFiles((c) => (c.key === failing ? 'EIO' : undefined));
    await writeFileAtomic(files, dir.path, 'x', Buffer.from('v1'));
    for (const step of ['open-w:dir', 'writev:dir', 'datasync:dir', 'rename:dir']) {
      failing = step;
      await expect(writeFileAtomic(files, dir.path, 'x', Buffer.from('v2'))).rejects.toThrow(/EIO/);
      expect(readFileSync(join(dir.path, 'x'), 'utf8')).toBe('v1');
      // A temporary file that could not be finished does not stay behind (it would hold space on a full disk).
      if (step !== 'rename:dir') expect(existsSync(join(dir.path, '.x.tmp'))).toBe(false);
    }
    dir.cleanup();
  });
});
