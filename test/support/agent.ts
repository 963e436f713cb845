import { createAgent, type Agent } from '../../src/agent.js';
import { hashConfig, validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { tempDir } from './temp.js';
import { mergeTrees } from './tree.js';

/** An in-process agent on free loopback ports, with its log lines captured. */
export interface TestAgent {
  agent: Agent;
  grpcAddress: string;
  /** `127.0.0.1:<port>` of the rate-limit worker's listener (server.ratelimit). */
  ratelimitAddress: string;
  adminUrl: string;
  otlpHttpUrl: string;
  /** Every log line written so far, parsed. */
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * Starts an agent with embedded storage in a temporary directory unless overrides say otherwise;
 * with embedded storage, resolves once storage is ready.
 */
export async function startTestAgent(overrides: Record<string, unknown> = {}, options: { start?: boolean; clock?: Float64Array } = {}): Promise<TestAgent> {
  const dir = tempDir();
  const tree = mergeTrees(
    {
      log: { level: 'debug' },
      // main_thread_nice 0: the agent runs in the test's own process, whose children would inherit a lower priority.
      server: { grpc: { address: '127.0.0.1:0' }, otlp_http: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, ratelimit: { address: '127.0.0.1:0', main_thread_nice: 0 } },
      storage: { embedded: { path: dir.path } },
      shutdown: { drain: '0s' },
    },
    overrides,
  );
  const config = validateConfig(tree);
  const logs: Array<Record<string, unknown>> = [];
  // The agent's own logger (with correlation ids), writing into the array.
  const logger = createLogger({ level: config.log.level, destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
  const agent = createAgent({ loaded: { config, source: undefined, hash: hashConfig(config) }, logger, clock: options.clock });
  if (options.start !== false) {
    await agent.start();
    // Embedded storage connects after start; tests that use it (jobs, queries) need it ready. A
    // test that configures a ClickHouse server (an outage) decides itself what to wait for.
    if (!config.storage.clickhouse.url) await agent.storage.whenReady(AbortSignal.timeout(60_000));
  }
  return {
    agent,
    get grpcAddress() {
      return `127.0.0.1:${agent.grpc.port}`;
    },
    get ratelimitAddress() {
      return `127.0.0.1:${agent.ratelimit.port}`;
    },
    get adminUrl() {
      return `http://127.0.0.1:${agent.admin.port}`;
    },
    get otlpHttpUrl() {
      return `http://127.0.0.1:${agent.otlpHttp.port}`;
    },
    logs,
    async stop() {
      await agent.shutdown();
      dir.cleanup();
    },
  };
}

/** A clock for the rate-limit buckets in shared memory, as the worker thread reads it: `clock[0]` is now, in ms; tests move it. */
export function sharedClock(ms = 0): Float64Array {
  const clock = new Float64Array(new SharedArrayBuffer(8));
  clock[0] = ms;
  return clock;
}
