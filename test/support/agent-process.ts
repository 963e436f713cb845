import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { mergeTrees, type Tree } from './tree.js';
import { until } from './wait.js';

/** The built agent, as the image runs it: the bundle (test/global-setup.ts builds it before the suite). */
export const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'bundle', 'main.js');

/**
 * Writes `<dir>/heimdall.yaml` for an agent run as a process in a test and returns its path: every
 * listener on 127.0.0.1 with a free port, embedded storage in `<dir>/data`, no drain at shutdown,
 * with `sections` merged over that (e.g. `{ ingest: { ack: 'queued' } }`).
 */
export function writeAgentConfig(dir: string, sections: Tree = {}): string {
  const listener = { address: '127.0.0.1:0' };
  const base: Tree = {
    server: { grpc: listener, otlp_http: listener, admin: listener, ratelimit: listener },
    storage: { embedded: { path: join(dir, 'data') } },
    shutdown: { drain: '0s' },
  };
  const path = join(dir, 'heimdall.yaml');
  writeFileSync(path, stringify(mergeTrees(base, sections)));
  return path;
}

/** An agent running as its own process (its own chdb data directory), as in production. */
export interface AgentProcess {
  child: ChildProcess;
  /** Listener ports by component (grpc, otlp_http, admin, ratelimit). */
  ports: Record<string, number>;
  /** `127.0.0.1:<grpc port>`. */
  addr: string;
  /** Every log line so far, parsed. */
  lines: Array<Record<string, unknown>>;
  /** The same lines as written (JSON.parse keeps only the last of a repeated key). */
  raw: string[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Sends `signal` (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `heimdall run --config <config>`; resolves once it logged "Heimdall started". With
 * `openFiles`, the process runs under that open-file limit (`ulimit -n`); `env` and `cwd` as for spawn.
 */
export async function startAgentProcess(config: string, options: { openFiles?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<AgentProcess> {
  const args = [MAIN, 'run', '--config', config];
  const spawnOptions = { stdio: ['ignore', 'pipe', 'inherit'] as ['ignore', 'pipe', 'inherit'], env: options.env, cwd: options.cwd };
  const child = options.openFiles
    ? spawn('sh', ['-c', `ulimit -n ${options.openFiles} && exec "$0" "$@"`, process.execPath, ...args], spawnOptions)
    : spawn(process.execPath, args, spawnOptions);
  const ports: Record<string, number> = {};
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        raw.push(buf.slice(0, i));
        const l = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        lines.push(l);
        if (typeof l.component === 'string' && typeof l.port === 'number') ports[l.component] = l.port;
        if (l.msg === 'Heimdall started') resolve();
      }
    });
    void exited.then((code) => reject(new Error(`agent exited ${String(code)} before it started`)));
  });
  return {
    child,
    ports,
    addr: `127.0.0.1:${ports.grpc}`,
    lines,
    raw,
    exited,
    stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Resident and peak resident memory of a process, in MiB (from /proc). */
export function rss(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mib = (key: string) => Math.round(Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) / 1024);
  return { now: mib('VmRSS'), peak: mib('VmHWM') };
}

/** Resolves once the agent's /readyz answers 200 (embedded storage connected, as it gates readiness); throws past `timeoutMs`. */
export async function untilReady(agent: Pick<AgentProcess, 'ports'>, timeoutMs = 60_000): Promise<void> {
  await until(async () => (await fetch(`http://127.0.0.1:${String(agent.ports.admin)}/readyz`).catch(() => undefined))?.status === 200, timeoutMs, '/readyz 200');
}
