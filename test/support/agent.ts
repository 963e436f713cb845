import { createAgent, type Agent } from '../../src/agent.js';
import { hashConfig, validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { tempDir } from './temp.js';

/** An in-process agent on free loopback ports, with its log lines captured. */
export interface TestAgent {
  agent: Agent;
  grpcAddress: string;
  adminUrl: string;
  otlpHttpUrl: string;
  /** Every log line written so far, parsed. */
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Deep-merges b into a (objects only). */
export function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' ? merge(prev as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** Starts an agent with embedded storage in a temporary directory unless overrides say otherwise. */
export async function startTestAgent(overrides: Record<string, unknown> = {}, options: { start?: boolean; clock?: () => number } = {}): Promise<TestAgent> {
  const dir = tempDir();
  const tree = merge(
    {
      log: { level: 'debug' },
      server: { grpc: { address: '127.0.0.1:0' }, otlp_http: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
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
  if (options.start !== false) await agent.start();
  return {
    agent,
    get grpcAddress() {
      return `127.0.0.1:${agent.grpc.port}`;
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
