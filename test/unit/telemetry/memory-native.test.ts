import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createNativeRelease, fileMappings, unmappable } from '../../../src/telemetry/memory-native.js';
import { createLogger } from '../../../src/telemetry/logger.js';

const MiB = 2 ** 20;
const LIB = '/opt/app/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so';

/** A mapping's lines in /proc/self/smaps: its header, then Rss, Anonymous and Swap in kB (among others). */
const entry = (range: string, perms: string, path: string, rssKiB: number, anonKiB = 0, swapKiB = 0) =>
  [`${range} ${perms} 00000000 fd:01 42      ${path}`, 'Size:              100 kB', `Rss:     ${rssKiB} kB`, 'Pss:  1 kB', `Anonymous:     ${anonKiB} kB`, `Swap:     ${swapKiB} kB`, 'VmFlags: rd mr mw me'].join('\n');

/** smaps text of a process with the engine library resident as given (MiB), beside other mappings. */
function smaps(lib: { rodata: number; text: number; data?: number }): string {
  return [
    entry('00400000-00452000', 'r-xp', '/usr/bin/node', 300),
    entry('7f0000000000-7f0000800000', 'r--p', LIB, lib.rodata * 1024, 1024),
    entry('7f0000800000-7f0020000000', 'r-xp', LIB, lib.text * 1024),
    entry('7f0020000000-7f0020100000', 'rw-p', LIB, (lib.data ?? 1) * 1024, (lib.data ?? 1) * 1024),
    entry('7f0030000000-7f0030001000', 'r-xp', '/opt/other/libchdb.so.bak', 4),
    entry('7f0040000000-7f0040021000', 'rw-p', '', 132, 132),
    entry('01e9a000-0200c000', 'rw-p', '[heap]', 2000, 2000),
    entry('7f0050000000-7f0050001000', 'r--p', '/tmp/a file with spaces.so', 4),
  ].join('\n');
}

/** Log lines written by a logger at info, parsed. */
function captured() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } });
  return { lines, logger };
}

/**
 * Native calls on a fake process whose engine library has 60 MiB of read-only data (1 MiB of it
 * written: relocated) and 120 MiB of code in memory; unmapping the code leaves 5 MiB (the code that
 * ran since). unmapPages throws `error` when set.
 */
function fakeProcess(error?: Error) {
  const state = { rodata: 60, text: 120, unmapped: [] as Array<[number, number]>, trims: 0 };
  const calls = {
    unmapPages(start: number, length: number) {
      if (error) throw error;
      state.unmapped.push([start, length]);
      if (start === 0x7f0000800000) state.text = 5;
    },
    trimHeap() {
      state.trims++;
      return true;
    },
  };
  return { state, calls, readSmaps: () => smaps(state) };
}

describe('fileMappings', () => {
  it('reads the file-backed mappings of /proc/self/smaps: range, writable, path (spaces kept), file pages in memory (Rss less Anonymous)', () => {
    const m = fileMappings(smaps({ rodata: 60, text: 120 }));
    expect(m.map((x) => x.path)).toEqual(['/usr/bin/node', LIB, LIB, LIB, '/opt/other/libchdb.so.bak', '/tmp/a file with spaces.so']);
    expect(m[1]).toEqual({ start: 0x7f0000000000, length: 0x800000, writable: false, path: LIB, fileResident: 59 * MiB, anonymous: MiB, swap: 0 });
    expect(m[2]).toMatchObject({ fileResident: 120 * MiB, anonymous: 0 });
    expect(m[3]).toMatchObject({ writable: true, fileResident: 0, anonymous: MiB });
  });

  it("a header it cannot read (no name and no space after the inode, or garbled) ends the mapping before it: that one's figures never land on a file mapping; Swap is read", () => {
    const text = [
      entry('7f0000000000-7f0000800000', 'r--p', LIB, 8192, 0, 4096),
      ['7f0040000000-7f0040021000 rw-p 00000000 00:00 0', 'Rss:  132 kB', 'Anonymous:  132 kB'].join('\n'),
      entry('7f0050000000-7f0050001000', 'r-xp', '/lib/x.so', 4),
      ['7f0060000000-7f0060001000 r--p garbled', 'Rss:  999 kB', 'Anonymous:  0 kB'].join('\n'),
    ].join('\n');
    const m = fileMappings(text);
    expect(m.map((x) => [x.path, x.fileResident, x.anonymous, x.swap])).toEqual([
      [LIB, 8 * MiB, 0, 4 * MiB],
      ['/lib/x.so', 4096, 0, 0],
    ]);
  });

  it('counts a mapping unmappable only when read-only with no written page in memory or swapped out', () => {
    const base = { start: 0, length: 4096, path: LIB, fileResident: 4096 };
    expect(unmappable({ ...base, writable: false, anonymous: 0, swap: 0 })).toBe(true);
    expect(unmappable({ ...base, writable: true, anonymous: 0, swap: 0 })).toBe(false);
    expect(unmappable({ ...base, writable: false, anonymous: 4096, swap: 0 })).toBe(false);
    // Relocated data whose written pages were all swapped out: Anonymous 0, but unmapping would lose them.
    expect(unmappable({ ...base, writable: false, anonymous: 0, swap: 4096 })).toBe(false);
  });

  it("reads this process's own smaps: Node's binary is there, mapped read-only, partly in memory", () => {
    const own = fileMappings(readFileSync('/proc/self/smaps', 'utf8')).filter((m) => m.path === process.execPath && !m.writable);
    expect(own.length).toBeGreaterThan(0);
    expect(own.reduce((sum, m) => sum + m.fileResident, 0)).toBeGreaterThan(MiB);
  });
});

describe('createNativeRelease', () => {
  it("unmaps the named library's read-only mappings with no written page only (not its relocated or writable data, not other files), and trims malloc's arenas", () => {
    const p = fakeProcess();
    const release = createNativeRelease({ logger: captured().logger, unmap: ['libchdb.so'], calls: p.calls, readSmaps: p.readSmaps });
    expect(release()).toEqual({ libraryResidentBytes: { before: 120 * MiB, after: 5 * MiB }, trimmed: true });
    expect(p.state.unmapped).toEqual([[0x7f0000800000, 0x1f800000]]);
    expect(p.state.trims).toBe(1);
  });

  it('unmaps again only once the library grew by growthBytes since the last unmapping (a load ran more of it); trims every time', () => {
    const p = fakeProcess();
    const release = createNativeRelease({ logger: captured().logger, unmap: ['libchdb.so'], growthBytes: 16 * MiB, calls: p.calls, readSmaps: p.readSmaps });
    release();
    p.state.text = 20; // +15 MiB: under the threshold
    expect(release()).toEqual({ libraryResidentBytes: { before: 20 * MiB, after: 20 * MiB }, trimmed: true });
    expect(p.state.unmapped).toHaveLength(1);
    p.state.text = 21; // +16 MiB
    expect(release()).toEqual({ libraryResidentBytes: { before: 21 * MiB, after: 5 * MiB }, trimmed: true });
    expect(p.state.unmapped).toHaveLength(2);
    expect(p.state.trims).toBe(3);
  });

  it("leaves a mapping whose written pages are swapped out, and a deleted file's mapping (its path ends in ' (deleted)')", () => {
    const calls = fakeProcess().calls;
    const unmapped: number[] = [];
    const readSmaps = () =>
      [entry('7f0000000000-7f0000800000', 'r--p', LIB, 0, 0, 1024), entry('7f0000800000-7f0020000000', 'r-xp', `${LIB} (deleted)`, 120 * 1024)].join('\n');
    const release = createNativeRelease({ logger: captured().logger, unmap: ['libchdb.so'], calls: { ...calls, unmapPages: (start: number) => void unmapped.push(start) }, readSmaps });
    expect(release()).toEqual({ libraryResidentBytes: { before: 0, after: 0 }, trimmed: true });
    expect(unmapped).toEqual([]);
  });

  it('says which step failed when /proc/self/smaps cannot be read, and stops trying', () => {
    const { lines, logger } = captured();
    const release = createNativeRelease({ logger, unmap: ['libchdb.so'], calls: fakeProcess().calls, readSmaps: () => { throw new Error('EACCES'); } });
    expect(release()).toEqual({ trimmed: true });
    expect(release()).toEqual({ trimmed: true });
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect((warnings[0]!.err as { message: string }).message).toMatch(/^cannot read \/proc\/self\/smaps: EACCES/);
  });

  it('with no library named, only trims', () => {
    const p = fakeProcess();
    const release = createNativeRelease({ logger: captured().logger, unmap: [], calls: p.calls, readSmaps: p.readSmaps });
    expect(release()).toEqual({ trimmed: true });
    expect(p.state.unmapped).toEqual([]);
  });

  it('when the kernel refuses, warns once, stops unmapping, and still trims; never throws', () => {
    const p = fakeProcess(new Error('Invalid argument'));
    const { lines, logger } = captured();
    const release = createNativeRelease({ logger, unmap: ['libchdb.so'], calls: p.calls, readSmaps: p.readSmaps });
    expect(release()).toEqual({ trimmed: true });
    expect(release()).toEqual({ trimmed: true });
    expect(p.state.trims).toBe(2);
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings.map((w) => w.msg)).toEqual(['cannot unmap library pages; not trying again']);
  });

  it('without the native module, says why once, at its first release, and releases nothing', () => {
    const { lines, logger } = captured();
    const release = createNativeRelease({ logger, unmap: ['libchdb.so'], calls: new Error('Cannot find module dist/native/memory.node'), readSmaps: () => smaps({ rodata: 60, text: 120 }) });
    expect(release()).toEqual({ trimmed: false });
    expect(lines.map((l) => [l.level, l.err])).toEqual([['info', 'Cannot find module dist/native/memory.node']]);
  });
});
