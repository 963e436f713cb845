import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createDeadLetterFolder } from '../../../src/ingest/pipeline/dead-letter-folder.js';
import { faultyFiles } from '../../support/faulty-files.js';
import { silentLogger, tempDir } from '../../support/temp.js';

describe('dead-letter folder', () => {
  it('counts what is there at start, then removes the oldest files (by sequence number) until a new one fits; one larger than the budget is not written', async () => {
    const dir = tempDir();
    const path = join(dir.path, 'dead-letter');
    mkdirSync(path);
    // Oldest by sequence number, not by name: 9 before 10, damaged regions by their segment's first record.
    writeFileSync(join(path, '10-12-heimdall_logs.jsonl'), Buffer.alloc(40));
    writeFileSync(join(path, '9-9-heimdall_logs.jsonl'), Buffer.alloc(30));
    writeFileSync(join(path, 'damaged-seg-00000000000000000011.wal-64-90.bin'), Buffer.alloc(20));
    writeFileSync(join(path, '.tmp-ignored'), Buffer.alloc(5));
    const removed = new Counter({ name: 'removed', help: 'removed', registers: [new Registry()] });
    const folder = createDeadLetterFolder({ path, files: faultyFiles(), maxBytes: 100, removed, logger: silentLogger() });
    await folder.start();
    expect(folder.bytes).toBe(90);
    const names = () => readdirSync(path).filter((n) => !n.startsWith('.')).sort();
    expect(await folder.write('13-13-heimdall_logs.jsonl', Buffer.alloc(35))).toBe(true);
    expect(names()).toEqual(['10-12-heimdall_logs.jsonl', '13-13-heimdall_logs.jsonl', 'damaged-seg-00000000000000000011.wal-64-90.bin']);
    expect(folder.bytes).toBe(95);
    expect(await folder.write('14-14-heimdall_logs.jsonl', Buffer.alloc(35))).toBe(true);
    expect(names()).toEqual(['13-13-heimdall_logs.jsonl', '14-14-heimdall_logs.jsonl', 'damaged-seg-00000000000000000011.wal-64-90.bin']);
    expect(folder.bytes).toBe(90);
    expect((await removed.get()).values[0]?.value).toBe(2);
    expect(await folder.write('15-15-heimdall_logs.jsonl', Buffer.alloc(101))).toBe(false);
    expect(folder.bytes).toBe(90);
    dir.cleanup();
  });

  it('a folder that cannot be listed counts only new files; a missing one is created at the first write', async () => {
    const dir = tempDir();
    const path = join(dir.path, 'dead-letter');
    const removed = new Counter({ name: 'removed', help: 'removed', registers: [new Registry()] });
    const files = faultyFiles((c) => (c.key === 'size:dead-letter' ? 'EIO' : undefined));
    mkdirSync(path);
    writeFileSync(join(path, '1-1-heimdall_logs.jsonl'), Buffer.alloc(10));
    const folder = createDeadLetterFolder({ path, files, maxBytes: 100, removed, logger: silentLogger() });
    await folder.start();
    expect(folder.bytes).toBe(0);
    const fresh = createDeadLetterFolder({ path: join(dir.path, 'other'), files: faultyFiles(), maxBytes: 100, removed, logger: silentLogger() });
    await fresh.start();
    expect(await fresh.write('2-2-heimdall_logs.jsonl', Buffer.from('x'))).toBe(true);
    expect(readdirSync(join(dir.path, 'other'))).toEqual(['2-2-heimdall_logs.jsonl']);
    dir.cleanup();
  });
});
