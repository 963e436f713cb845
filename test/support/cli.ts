import { execFile } from 'node:child_process';
import { expect } from 'vitest';
import { MAIN } from './agent-process.js';

/**
 * What one `heimdall` process may take to start and answer on a 2-core machine that other jobs
 * load: a CLI run took 2 s at a load average of 6 and up to 15 s at 15 (an agent start to
 * "Heimdall started" 17 s). Tests that start processes take their timeout from the number they start.
 */
export const PROCESS_START_MS = 20_000;

/** A test timeout for a test that starts `processes` processes (CLI runs or agents), plus `extraMs` of waiting of its own. */
export const processTimeout = (processes: number, extraMs = 0): number => 10_000 + processes * PROCESS_START_MS + extraMs;

/** A run still going after this hangs (it is killed): several runs started together share the cores, each taking longer. */
const HANG_MS = 120_000;

/** How a CLI run ended. */
export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Options of one CLI run. */
export interface CliOptions {
  /** Variables set over the test's environment. */
  env?: Record<string, string>;
  /** Working directory; default the test's. */
  cwd?: string;
  /** Node options before the script (e.g. `--import`). */
  nodeArgs?: string[];
}

/**
 * Runs the built `heimdall <args>` to its exit without blocking the test's event loop; resolves
 * with a non-zero exit too. Rejects, naming the command, when it cannot start or is still running
 * after HANG_MS.
 */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const { env = {}, cwd, nodeArgs = [] } = options;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...nodeArgs, MAIN, ...args], { env: { ...process.env, ...env }, cwd, encoding: 'utf8', timeout: HANG_MS, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(new Error(`heimdall ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve({ status: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/**
 * Runs `heimdall migrate` and `heimdall run` with `options`, together, and expects both to refuse to
 * open the store: exit status 1, `heimdall: <message>` on migrate's stderr and `cannot start:
 * <message>` as run's fatal log line.
 */
export async function expectStoreRefused(options: CliOptions, message: string): Promise<void> {
  const [migrate, agent] = await Promise.all([runCli(['migrate'], options), runCli(['run'], options)]);
  expect(migrate.stderr).toBe(`heimdall: ${message}\n`);
  expect(migrate.status).toBe(1);
  expect(agent.status).toBe(1);
  const fatal = agent.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 'fatal');
  expect(fatal?.msg).toBe(`cannot start: ${message}`);
}
