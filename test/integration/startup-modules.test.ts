// What an agent loads at start (issue 16, footprint): clients of transports and features it does not
// use stay unloaded, and are loaded, and work, once used. Runs the built agent as a process with
// test/support/module-log.mjs preloaded, which writes the packages loaded to a file at exit.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentProcess, untilReady, writeAgentConfig, type AgentProcess } from '../support/agent-process.js';
import { startClickHouseHttp, type ClickHouseHttp } from '../support/clickhouse-http.js';
import { tempDir } from '../support/temp.js';
import type { Tree } from '../support/tree.js';

const HOOK = join(import.meta.dirname, '..', 'support', 'module-log.mjs');

let dir: ReturnType<typeof tempDir> | undefined;
let agent: AgentProcess | undefined;
let ch: ClickHouseHttp | undefined;

afterEach(async () => {
  await agent?.stop();
  await ch?.close();
  dir?.cleanup();
  agent = undefined;
  ch = undefined;
  dir = undefined;
});

/** Starts the agent with `sections`, waits for /readyz 200, runs `use`, stops it; the packages it loaded. */
async function packagesLoaded(sections: Tree, use: (admin: string) => Promise<void> = async () => {}): Promise<string[]> {
  dir = tempDir();
  const log = join(dir.path, 'modules.txt');
  agent = await startAgentProcess(writeAgentConfig(dir.path, sections), { env: { ...process.env, NODE_OPTIONS: `--import ${HOOK}`, HEIMDALL_MODULE_LOG: log } });
  await untilReady(agent);
  const admin = `http://127.0.0.1:${String(agent.ports.admin)}`;
  expect((await fetch(`${admin}/status`)).status).toBe(200);
  await use(admin);
  expect(await agent.stop()).toBe(0);
  return readFileSync(log, 'utf8').split('\n');
}

/** A Connect JSON call of SystemService/GetStatus on the admin port; its HTTP status and body. */
async function getStatusOverConnect(admin: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${admin}/heimdall.v1.SystemService/GetStatus`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('modules loaded at start', () => {
  // prom-client loads @opentelemetry/api (0.1 MiB) for exemplars; the SDK and exporters are what tracing adds.
  it('embedded, tracing off, no Redis: neither the OpenTelemetry SDK nor its exporters, @clickhouse/client, ioredis or Connect', async () => {
    const packages = await packagesLoaded({});
    expect(packages).toContain('chdb');
    expect(packages).toContain('@grpc/grpc-js');
    expect(packages.filter((p) => /^@opentelemetry\/(?!api$)|^@clickhouse\/client$|^ioredis$|^@connectrpc\//.test(p))).toEqual([]);
  }, 60_000);

  it('loads the Connect router at the first Connect request, which is answered as before', async () => {
    let answer: { status: number; body: Record<string, unknown> } | undefined;
    const packages = await packagesLoaded({}, async (admin) => {
      answer = await getStatusOverConnect(admin);
    });
    expect(answer?.status).toBe(200);
    expect(answer?.body).toMatchObject({ ready: true });
    expect(packages).toEqual(expect.arrayContaining(['@connectrpc/connect', '@connectrpc/connect-node']));
  }, 60_000);

  it('server transport: @clickhouse/client, not chdb', async () => {
    const chDir = tempDir();
    ch = await startClickHouseHttp(chDir.path);
    try {
      const packages = await packagesLoaded({ storage: { clickhouse: { url: ch.url } } });
      expect(packages).toContain('@clickhouse/client');
      expect(packages).not.toContain('chdb');
    } finally {
      chDir.cleanup();
    }
  }, 60_000);

  it('tracing on: the OpenTelemetry SDK and exporter are loaded at start', async () => {
    const packages = await packagesLoaded({ telemetry: { tracing: { enabled: true, endpoint: 'http://127.0.0.1:9' } } });
    expect(packages).toEqual(expect.arrayContaining(['@opentelemetry/sdk-node', '@opentelemetry/exporter-trace-otlp-grpc']));
  }, 60_000);
});
