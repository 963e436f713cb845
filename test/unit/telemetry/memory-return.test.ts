import { execFileSync } from 'node:child_process';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { collectLowMemory, createMemoryReturn, GC_FLAGS, type MemoryReading, type MemoryReturnOptions } from '../../../src/telemetry/memory-return.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import { silentLogger } from '../../support/temp.js';

const MiB = 2 ** 20;

/** A process whose memory and event-loop utilisation the test sets; `collect` drops memory back to `afterCollect`. */
function fakeProcess() {
  const memory: MemoryReading = { heapUsed: 20 * MiB, external: 2 * MiB };
  const state = { memory, busy: 0, afterCollect: { heapUsed: 20 * MiB, external: 2 * MiB }, collections: 0, flags: [] as string[] };
  const elu = (busy: number): EventLoopUtilization => ({ idle: 1 - busy, active: busy, utilization: busy });
  return {
    state,
    options: {
      logger: silentLogger(),
      read: () => state.memory,
      utilization: (previous?: EventLoopUtilization) => elu(previous ? state.busy : 0),
      collect: async () => {
        state.collections++;
        state.memory = state.afterCollect;
      },
      nodeFlags: '--max-semi-space-size=4',
      setFlag: (flag: string) => void state.flags.push(flag),
    },
  };
}

/** A memory return started on `p`, past its first collection (start-up's); the count of collections back at 0. */
async function settled(p: ReturnType<typeof fakeProcess>, options: Partial<MemoryReturnOptions> = {}) {
  const m = createMemoryReturn({ ...p.options, ...options });
  await m.start();
  expect(await m.check()).toBe(true);
  p.state.collections = 0;
  return m;
}

describe('createMemoryReturn', () => {
  it('sets the GC flags once started (old generation up to twice what survives, marking at 80% of it), each unless the operator set it', async () => {
    const p = fakeProcess();
    const m = createMemoryReturn(p.options);
    expect(p.state.flags).toEqual([]);
    await m.start();
    expect(p.state.flags).toEqual(['--heap-growing-percent=100', '--incremental-marking-soft-trigger=80']);
    await m.shutdown();
    // The rate-limit worker's own memory return leaves the flags to the main thread.
    const worker = fakeProcess();
    const w = createMemoryReturn({ ...worker.options, setGcFlags: false });
    await w.start();
    expect(worker.state.flags).toEqual([]);
    await w.shutdown();
    const cases: Array<[string, string[]]> = [
      ['--heap-growing-percent=300', ['--incremental-marking-soft-trigger=80']],
      ['--max-semi-space-size=4 --heap_growing_percent=50', ['--incremental-marking-soft-trigger=80']],
      ['--incremental_marking_soft_trigger=50', ['--heap-growing-percent=100']],
      ['--heap-growing-percent=300 --incremental-marking-soft-trigger=0', []],
    ];
    for (const [nodeFlags, set] of cases) {
      const own = fakeProcess();
      const mine = createMemoryReturn({ ...own.options, nodeFlags });
      await mine.start();
      expect(own.state.flags, nodeFlags).toEqual(set);
      await mine.shutdown();
    }
    // The flags exist in this Node's V8 (setFlagsFromString ignores unknown flags without a word).
    const known = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    for (const flag of GC_FLAGS) expect(known).toContain(`  ${flag.split('=')[0] ?? ''} `);
  });

  it('collects once, settleMs after start and quiet, what starting left (growth or not); after that only past the threshold', async () => {
    const p = fakeProcess();
    const m = createMemoryReturn({ ...p.options, growthBytes: 16 * MiB, settleMs: 10, intervalMs: 3_600_000 });
    await m.start();
    await expect.poll(() => p.state.collections, { timeout: 5_000 }).toBe(1);
    expect(await m.check()).toBe(false);
    await m.shutdown();
    // Busy when it first looks: it collects at the first quiet look.
    const busy = fakeProcess();
    busy.state.busy = 0.5;
    const b = createMemoryReturn({ ...busy.options, growthBytes: 16 * MiB, settleMs: 3_600_000 });
    await b.start();
    expect(await b.check()).toBe(false);
    busy.state.busy = 0;
    expect(await b.check()).toBe(true);
    expect(await b.check()).toBe(false);
    await b.shutdown();
  });

  it('collects once when the process is quiet and memory grew past the threshold since the last collection', async () => {
    const p = fakeProcess();
    const m = await settled(p, { growthBytes: 16 * MiB });
    p.state.memory = { heapUsed: 30 * MiB, external: 40 * MiB };
    expect(await m.check()).toBe(true);
    expect(p.state.collections).toBe(1);
    // Back at the baseline: nothing more to do.
    expect(await m.check()).toBe(false);
    expect(p.state.collections).toBe(1);
    await m.shutdown();
    await m.shutdown();
  });

  it('does not collect while the event loop is busy (a load is running), and does once it is quiet', async () => {
    const p = fakeProcess();
    const m = await settled(p, { growthBytes: 16 * MiB, quietUtilization: 0.1 });
    p.state.memory = { heapUsed: 60 * MiB, external: 40 * MiB };
    p.state.busy = 0.5;
    expect(await m.check()).toBe(false);
    p.state.busy = 0.02;
    expect(await m.check()).toBe(true);
  });

  it('does not collect for growth under the threshold', async () => {
    const p = fakeProcess();
    const m = await settled(p, { growthBytes: 16 * MiB });
    p.state.memory = { heapUsed: 30 * MiB, external: 7 * MiB };
    expect(await m.check()).toBe(false);
    expect(p.state.collections).toBe(0);
  });

  it('measures growth from the lowest memory seen, not from start', async () => {
    const p = fakeProcess();
    p.state.memory = { heapUsed: 50 * MiB, external: 10 * MiB };
    const m = await settled(p, { growthBytes: 16 * MiB });
    p.state.memory = { heapUsed: 20 * MiB, external: 2 * MiB };
    expect(await m.check()).toBe(false);
    p.state.memory = { heapUsed: 30 * MiB, external: 10 * MiB };
    expect(await m.check()).toBe(true);
  });

  it('runs release after each collection, not otherwise, and logs what it gave back', async () => {
    const p = fakeProcess();
    const lines: Array<Record<string, unknown>> = [];
    let releases = 0;
    const release = () => ({ libraryResidentBytes: { before: 180 * MiB, after: 2 * MiB }, trimmed: ++releases % 2 === 1 });
    const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } });
    const m = await settled(p, { logger, growthBytes: MiB, release });
    expect(releases).toBe(1);
    expect(await m.check()).toBe(false);
    expect(releases).toBe(1);
    p.state.memory = { heapUsed: 60 * MiB, external: 40 * MiB };
    expect(await m.check()).toBe(true);
    expect(releases).toBe(2);
    expect(lines.filter((l) => l.msg === 'quiet: memory collected').map((l) => [l.libraryResidentBytes, l.trimmed])).toEqual([
      [{ before: 180 * MiB, after: 2 * MiB }, true],
      [{ before: 180 * MiB, after: 2 * MiB }, false],
    ]);
  });

  it('never rejects when the collection fails', async () => {
    const p = fakeProcess();
    const m = createMemoryReturn({ ...p.options, growthBytes: MiB, collect: () => Promise.reject(new Error('no')) });
    await m.start();
    p.state.memory = { heapUsed: 60 * MiB, external: 40 * MiB };
    expect(await m.check()).toBe(false);
  });

  it('backs off after failed collections (1, 2, 4 ... looks skipped), warns once, and is back to every look once one succeeds', async () => {
    const p = fakeProcess();
    const lines: Array<Record<string, unknown>> = [];
    let fail = true;
    let tries = 0;
    const collect = async () => {
      tries++;
      if (fail) throw new Error('no inspector');
      await p.options.collect();
    };
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } });
    const m = createMemoryReturn({ ...p.options, logger, growthBytes: MiB, collect });
    await m.start();
    p.state.memory = { heapUsed: 60 * MiB, external: 40 * MiB };
    const tried: number[] = [];
    for (let look = 1; look <= 20; look++) {
      const before = tries;
      await m.check();
      if (tries > before) tried.push(look);
    }
    expect(tried).toEqual([1, 3, 6, 11, 20]);
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(['memory collection failed; retrying less and less often']);
    fail = false;
    for (let look = 21; look <= 40; look++) {
      if (await m.check()) break;
    }
    expect(p.state.collections).toBe(1);
    p.state.memory = { heapUsed: 60 * MiB, external: 40 * MiB };
    expect(await m.check()).toBe(true);
  });

  it('its default collection is a real full one: garbage promoted to the old generation is collected', async () => {
    // Growth 0: this test is about the collection, not the gate (the tests above are); in a shared
    // test worker, earlier tests' garbage collected meanwhile could hide any growth.
    const m = createMemoryReturn({ logger: silentLogger(), quietUtilization: 1.01, growthBytes: 0 });
    await m.start();
    // 64 MiB of Buffers held by an object that survives long enough to be promoted, then dropped.
    let collected = false;
    const registry = new FinalizationRegistry(() => (collected = true));
    const holder: { buffers?: Buffer[] } = { buffers: Array.from({ length: 64 }, () => Buffer.alloc(MiB, 1)) };
    registry.register(holder.buffers ?? [], 'buffers');
    for (let i = 0; i < 4; i++) Array.from({ length: 100_000 }, (_, j) => ({ j }));
    delete holder.buffers;
    expect(await m.check()).toBe(true);
    await expect.poll(() => collected, { timeout: 5_000 }).toBe(true);
    await m.shutdown();
  });

  it("its default collection gives the freed pages back: the heap's size ends near what is in use", async () => {
    const box: { held?: unknown[] } = { held: Array.from({ length: 300_000 }, (_, i) => ({ i, s: `x${i}` })) };
    const grown = getHeapStatistics();
    delete box.held;
    await collectLowMemory();
    const after = getHeapStatistics();
    // A full collection started by vm.measureMemory frees the same garbage but keeps ~9 MiB of empty pages here.
    expect(after.total_heap_size - after.used_heap_size).toBeLessThan(4 * MiB);
    expect(after.total_heap_size).toBeLessThan(grown.total_heap_size - 16 * MiB);
  });
});
