import { existsSync, openSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCheckpointStore, numberingFloor, resumeCheckpoint, type Checkpoint } from '../../../src/ingest/pipeline/checkpoint.js';
import { newSalt } from '../../../src/ingest/pipeline/wal.js';
import { faultyFiles } from '../../support/faulty-files.js';
import { silentLogger, tempDir } from '../../support/temp.js';
import { canMountTmpfs, mountTmpfs } from '../../support/tmpfs.js';

const store = (dir: string, files = faultyFiles()) => createCheckpointStore({ dir, files, logger: silentLogger() });
const fresh = (): Checkpoint => ({ id: 'queue-id', salt: newSalt(), committed: 0n, plan: undefined });

describe('queue checkpoint', () => {
  it('has none at first, then reads back what it saved; after the first save it writes in place, creating nothing', async () => {
    const dir = tempDir();
    const files = faultyFiles();
    const a = store(dir.path, files);
    expect(await a.load()).toBeUndefined();
    expect(a.created).toBe(false);
    const c = fresh();
    await a.save({ ...c, plan: { from: 1n, to: 5n } });
    expect(a.created).toBe(true);
    const size = statSync(join(dir.path, 'checkpoint')).size;
    const created = files.calls.length;
    for (let i = 1n; i <= 20n; i++) await a.save({ ...c, committed: i * 5n, plan: i % 2n ? { from: i * 5n + 1n, to: i * 5n + 9n } : undefined });
    await a.close();
    // In place: only writes and fdatasyncs of the open file, and the same size.
    expect(new Set(files.calls.slice(created).map((k) => k.key))).toEqual(new Set(['open-r+:checkpoint', 'writev:checkpoint', 'datasync:checkpoint']));
    expect(statSync(join(dir.path, 'checkpoint')).size).toBe(size);
    const b = store(dir.path);
    expect(await b.load()).toEqual({ ...c, committed: 100n, plan: undefined });
    expect(b.created).toBe(true);
    dir.cleanup();
  });

  it('a slot torn by a crash leaves the previous checkpoint', async () => {
    const dir = tempDir();
    const a = store(dir.path);
    const checkpoint = fresh();
    await a.save({ ...checkpoint, committed: 7n });
    await a.save({ ...checkpoint, committed: 9n, plan: { from: 10n, to: 12n } });
    await a.close();
    // The newest (generation 2) is in slot 0: tear it.
    const fd = openSync(join(dir.path, 'checkpoint'), 'r+');
    writeSync(fd, Buffer.from('torn'), 0, 4, 30);
    closeSync(fd);
    expect(await store(dir.path).load()).toEqual({ ...checkpoint, committed: 7n, plan: undefined });
    dir.cleanup();
  });

  it('reads state.json and plan.json of the previous version, and removes them once the checkpoint holds them', async () => {
    const dir = tempDir();
    writeFileSync(join(dir.path, 'state.json'), JSON.stringify({ id: 'old', committed: '41' }));
    writeFileSync(join(dir.path, 'plan.json'), JSON.stringify({ from: '42', to: '50' }));
    const a = store(dir.path);
    const loaded = await a.load();
    expect(loaded).toEqual({ id: 'old', salt: undefined, committed: 41n, plan: { from: 42n, to: 50n } });
    const salt = newSalt();
    await a.save({ id: 'old', salt, committed: 50n, plan: undefined });
    await a.close();
    expect(existsSync(join(dir.path, 'state.json'))).toBe(false);
    expect(existsSync(join(dir.path, 'plan.json'))).toBe(false);
    expect(await store(dir.path).load()).toEqual({ id: 'old', salt, committed: 50n, plan: undefined });
    dir.cleanup();
  });

  it('a failed save throws and keeps the previous checkpoint; the next save goes to the same slot', async () => {
    const dir = tempDir();
    let fail = false;
    const files = faultyFiles((c) => (fail && c.key === 'writev:checkpoint' ? 'EIO' : undefined));
    const a = store(dir.path, files);
    const checkpoint = fresh();
    await a.save({ ...checkpoint, committed: 3n });
    fail = true;
    await expect(a.save({ ...checkpoint, committed: 4n })).rejects.toThrow(/EIO/);
    expect((await store(dir.path).load())?.committed).toBe(3n);
    fail = false;
    await a.save({ ...checkpoint, committed: 5n });
    await a.save({ ...checkpoint, committed: 6n });
    await a.close();
    expect((await store(dir.path).load())?.committed).toBe(6n);
    dir.cleanup();
  });

  it.runIf(canMountTmpfs())('commits on a disk with no space left at all (a real full tmpfs)', async () => {
    const disk = mountTmpfs('1m');
    try {
      const a = store(disk.path);
      const checkpoint = fresh();
      await a.save(checkpoint);
      // Fill every block that is left.
      const fd = openSync(join(disk.path, 'ballast'), 'w');
      const block = Buffer.alloc(4096, 1);
      expect(() => {
        for (;;) writeSync(fd, block);
      }).toThrow(/ENOSPC/);
      closeSync(fd);
      for (let i = 1n; i <= 50n; i++) await a.save({ ...checkpoint, committed: i });
      await a.close();
      expect((await store(disk.path).load())?.committed).toBe(50n);
      expect(readFileSync(join(disk.path, 'checkpoint')).length).toBe(8192);
    } finally {
      disk.unmount();
    }
  });

  it('a checkpoint, state.json or plan.json that cannot be read or parsed is set aside and counts as none: start never fails on it', async () => {
    const dir = tempDir();
    // Both slots damaged.
    writeFileSync(join(dir.path, 'checkpoint'), Buffer.alloc(8192, 7));
    expect(await store(dir.path).load()).toBeUndefined();
    expect(readFileSync(join(dir.path, 'checkpoint.damaged'))).toEqual(Buffer.alloc(8192, 7));
    // A state.json that is not JSON.
    writeFileSync(join(dir.path, 'state.json'), '{"id":"old","comm');
    expect(await store(dir.path).load()).toBeUndefined();
    expect(readFileSync(join(dir.path, 'state.json.damaged'), 'utf8')).toBe('{"id":"old","comm');
    // A good state.json with a broken plan.json: the state, without the plan.
    writeFileSync(join(dir.path, 'state.json'), JSON.stringify({ id: 'old', committed: '9' }));
    writeFileSync(join(dir.path, 'plan.json'), '{"from":');
    expect(await store(dir.path).load()).toEqual({ id: 'old', salt: undefined, committed: 9n, plan: undefined });
    expect(existsSync(join(dir.path, 'plan.json.damaged'))).toBe(true);
    dir.cleanup();
    // An I/O error reading the checkpoint.
    const other = tempDir();
    await store(other.path).save(fresh());
    const eio = faultyFiles((c) => (c.key === 'readFile:checkpoint' ? 'EIO' : undefined));
    expect(await store(other.path, eio).load()).toBeUndefined();
    other.cleanup();
  });
});

describe('checkpoint at start', () => {
  const salt = Buffer.from('0123456789abcdef', 'hex');
  it('numbers new records past the planned batch or the committed mark, whichever is higher', () => {
    expect(numberingFloor(undefined)).toBe(0n);
    expect(numberingFloor({ id: 'q', salt, committed: 5n, plan: undefined })).toBe(5n);
    expect(numberingFloor({ id: 'q', salt, committed: 5n, plan: { from: 6n, to: 9n } })).toBe(9n);
    expect(numberingFloor({ id: 'q', salt: undefined, committed: 5n, plan: { from: 2n, to: 3n } })).toBe(5n);
  });

  it('resumes committed at least up to the oldest segment, keeping only a plan past the committed mark', () => {
    expect(resumeCheckpoint({ id: 'q', salt: undefined, committed: 5n, plan: { from: 6n, to: 9n } }, salt, 2n)).toEqual({ id: 'q', salt, committed: 5n, plan: { from: 6n, to: 9n } });
    // Segments before 11 were removed: their records were stored, and so was the plan.
    expect(resumeCheckpoint({ id: 'q', salt, committed: 5n, plan: { from: 6n, to: 9n } }, salt, 10n)).toEqual({ id: 'q', salt, committed: 10n, plan: undefined });
    // A stale plan.json at or under the committed mark.
    expect(resumeCheckpoint({ id: 'q', salt: undefined, committed: 9n, plan: { from: 6n, to: 9n } }, salt, 0n).plan).toBeUndefined();
    const fresh = resumeCheckpoint(undefined, salt, 3n);
    expect(fresh).toMatchObject({ salt, committed: 3n, plan: undefined });
    expect(fresh.id).toMatch(/^[0-9a-f-]{36}$/);
  });
});
