import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentProcess, writeAgentConfig, type AgentProcess } from '../support/agent-process.js';
import { haveBinary } from '../support/binaries.js';
import { residentOf } from '../support/resident.mjs';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const ROOT = join(import.meta.dirname, '..', '..');
const MODULE = join(ROOT, 'dist', 'native', 'memory.node');
const NATIVE = pathToFileURL(join(ROOT, 'dist', 'telemetry', 'memory-native.js')).href;
const RESIDENT = pathToFileURL(join(ROOT, 'test', 'support', 'resident.mjs')).href;
const MiB = 2 ** 20;

/** Runs an ES module text in a fresh Node (with --expose-gc, from the repository root; `residentOf` and `require` defined); its last stdout line, parsed. */
function runChild(code: string): Record<string, unknown> {
  const prelude = `import { createRequire } from 'node:module'; import { residentOf } from ${JSON.stringify(RESIDENT)}; const require = createRequire(${JSON.stringify(`${ROOT}/`)});`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', `${prelude}\n${code}`], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

// The module is built by test/global-setup.ts (scripts/build-native.mjs) with the machine's C compiler.
const built = haveBinary('cc');

describe.runIf(built)('the native memory module (dist/native/memory.node)', () => {
  let agent: AgentProcess | undefined;
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });

  it('is built', () => {
    expect(existsSync(MODULE)).toBe(true);
  });

  /** In a fresh process: chdb opened on a temporary directory, a query before and after the release; what the release gave back. */
  const unmapInChild = () =>
    runChild(`
      const { createNativeRelease } = await import(${JSON.stringify(NATIVE)});
      const chdb = require('chdb');
      const dir = require('node:fs').mkdtempSync(require('node:os').tmpdir() + '/heimdall-unmap-');
      const session = new chdb.Session(dir);
      const count = async () => (await session.queryAsync('SELECT count() FROM numbers(12345)', { format: 'TSV' })).text().trim();
      const first = await count();
      const before = residentOf('self', '/libchdb.so');
      const logger = { info() {}, warn(...a) { console.error(...a); } };
      const released = createNativeRelease({ logger, unmap: ['libchdb.so'] })();
      const after = residentOf('self', '/libchdb.so');
      const again = await count();
      session.close();
      require('node:fs').rmSync(dir, { recursive: true, force: true });
      console.log(JSON.stringify({ first, again, before, after, released }));
    `);

  /** Checks what unmapInChild found: the library's resident memory fell by over 80 MiB and the engine answered the same before and after. */
  const expectUnmapped = (r: Record<string, unknown>) => {
    expect(r.first).toBe('12345');
    expect(r.again).toBe('12345');
    expect(r.before).toBeGreaterThan(100 * MiB);
    // The code (~380 MiB mapped) and read-only data, not the relocated data (written: anonymous memory).
    expect(r.after).toBeLessThan((r.before as number) - 80 * MiB);
    const { before, after } = (r.released as { libraryResidentBytes: { before: number; after: number } }).libraryResidentBytes;
    expect(before - after).toBeGreaterThan(80 * MiB);
  };

  it("unmaps the embedded engine's code and read-only data, and the engine still answers after it", () => {
    expectUnmapped(unmapInChild());
  });

  it('does so when another process maps the same library too (two agents on a node from one image; MADV_PAGEOUT leaves such pages)', async () => {
    const sibling = spawn(process.execPath, ['--input-type=module', '-e', "const { Session } = (await import('chdb')).default ?? await import('chdb'); const fs = await import('node:fs'); const dir = fs.mkdtempSync('/tmp/heimdall-sibling-'); const s = new Session(dir); await s.queryAsync('SELECT 1'); fs.rmSync(dir, { recursive: true, force: true }); console.log('ready'); setInterval(() => {}, 1000);"], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        sibling.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        sibling.once('exit', (code) => reject(new Error(`the sibling process exited (${code})`)));
      });
      expect(residentOf(sibling.pid!, '/libchdb.so')).toBeGreaterThan(100 * MiB);
      expectUnmapped(unmapInChild());
    } finally {
      sibling.kill('SIGKILL');
    }
  });

  it("gives a malloc arena's free pages back (malloc_trim): freed blocks below a live one", () => {
    const r = runChild(`
      const { loadNativeCalls } = await import(${JSON.stringify(NATIVE)});
      const calls = loadNativeCalls();
      let held = [];
      for (let i = 0; i < 1600; i++) held.push(Buffer.allocUnsafeSlow(64 * 1024).fill(1));
      const pin = Buffer.allocUnsafeSlow(1024).fill(1);
      held = null;
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 50));
      globalThis.gc();
      const freed = residentOf('self', '[heap]');
      const trimmed = calls.trimHeap();
      console.log(JSON.stringify({ freed, trimmed, after: residentOf('self', '[heap]'), pin: pin.length }));
    `);
    expect(r.freed).toBeGreaterThan(20 * MiB);
    expect(r.trimmed).toBe(true);
    expect(r.after).toBeLessThan((r.freed as number) - 15 * MiB);
  });

  it("an embedded agent unmaps the engine's start-up code once it has settled, and stays ready", async () => {
    const dir = tempDir('heimdall-unmap-agent-');
    try {
      agent = await startAgentProcess(writeAgentConfig(dir.path, { log: { level: 'debug' } }));
      const pid = agent.child.pid!;
      const started = residentOf(pid, '/libchdb.so');
      // The main thread's memory return, its first look 5 s after start (the rate-limit worker's own logs no release).
      const collected = (l: Record<string, unknown>) => l.msg === 'quiet: memory collected' && 'trimmed' in l;
      await until(() => agent!.lines.some(collected), 20_000, "the main thread's first collection");
      const line = agent.lines.find(collected)!;
      const { before, after } = line.libraryResidentBytes as { before: number; after: number };
      expect(before - after).toBeGreaterThan(80 * MiB);
      expect(line.trimmed).toEqual(expect.any(Boolean));
      expect(started).toBeGreaterThan(100 * MiB);
      expect(residentOf(pid, '/libchdb.so')).toBeLessThan(started - 80 * MiB);
      const res = await fetch(`http://127.0.0.1:${agent.ports.admin}/readyz`);
      expect(res.status).toBe(200);
    } finally {
      dir.cleanup();
    }
  });
});
