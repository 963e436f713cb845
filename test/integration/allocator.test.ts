/**
 * jemalloc, as the Kubernetes manifests preload it where storage is a ClickHouse server: the agent
 * runs on it end to end (real agent process, the test ClickHouse HTTP endpoint), and an embedded
 * agent, whose engine frees with glibc's malloc, refuses to start with it and says why instead of
 * aborting in the engine.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startAgentProcess, untilReady, writeAgentConfig, type AgentProcess } from '../support/agent-process.js';
import { jemallocLibrary } from '../support/binaries.js';
import { startClickHouseHttp, type ClickHouseHttp } from '../support/clickhouse-http.js';
import { expectStoreRefused, processTimeout } from '../support/cli.js';
import { renderKustomization, type K8sObject } from '../support/kustomize.js';
import { encodeTraces, traceRequest } from '../support/otlp-requests.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const lib = jemallocLibrary();

/** The allocator settings the base manifest gives the agent, with the library where this machine has it. */
function manifestAllocatorEnv(path: string): Record<string, string> {
  const deployment = renderKustomization(join(import.meta.dirname, '..', '..', 'deploy', 'kubernetes', 'base')).find((d) => d.kind === 'Deployment') as K8sObject;
  const sidecar = (deployment.spec.template.spec.initContainers as K8sObject[]).find((c) => c.name === 'heimdall') as K8sObject;
  const env = new Map((sidecar.env as K8sObject[]).map((e) => [e.name as string, e.value as string | undefined]));
  return { LD_PRELOAD: path, MALLOC_CONF: env.get('MALLOC_CONF') ?? '' };
}

describe.runIf(lib !== undefined)('a preloaded jemalloc', () => {
  const dir = tempDir();
  let ch: ClickHouseHttp | undefined;
  let agent: AgentProcess | undefined;
  afterAll(async () => {
    await agent?.stop();
    await ch?.close();
    dir.cleanup();
  });

  it('server storage: the agent runs on it and stores what it acknowledges', async () => {
    ch = await startClickHouseHttp(join(dir.path, 'ch'));
    const env = manifestAllocatorEnv(lib ?? '');
    expect(env.MALLOC_CONF).toContain('background_thread:true');
    agent = await startAgentProcess(writeAgentConfig(dir.path, { storage: { clickhouse: { url: ch.url } }, ingest: { batch: { max_delay: '20ms' } } }), { env: { ...process.env, ...env } });
    await untilReady(agent);
    const pid = agent.child.pid ?? 0;
    expect(readFileSync(`/proc/${String(pid)}/maps`, 'utf8')).toContain('libjemalloc.so.2');
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${String(agent.ports.otlp_http)}/v1/traces`, { method: 'POST', body: encodeTraces(traceRequest('on-jemalloc', 100)), headers: { 'content-type': 'application/x-protobuf' } });
      expect(res.status).toBe(200);
    }
    const count = async () => Number((await (await fetch(`${ch?.url ?? ''}/?query=${encodeURIComponent("SELECT count() FROM otel_traces WHERE ServiceName = 'on-jemalloc'")}`)).text()).trim());
    await until(async () => (await count()) === 2000, 20_000, 'the spans stored');
    expect(await agent.stop()).toBe(0);
    agent = undefined;
  }, processTimeout(2, 20_000));

  it('embedded storage: `heimdall run` and `heimdall migrate` refuse to open the engine with it, saying why and what to do', async () => {
    const message =
      `the embedded store cannot run with ${lib ?? ''} preloaded (LD_PRELOAD): chdb frees memory with glibc's malloc, so the process would abort ("free(): invalid pointer"). ` +
      'Unset LD_PRELOAD to use the embedded store (jemalloc is for server storage). ' +
      'Or run with a ClickHouse server instead: set storage.mode: server and storage.clickhouse.url (for example "http://clickhouse:8123") in the config file.';
    const embedded = tempDir();
    await expectStoreRefused({ cwd: embedded.path, env: { ...manifestAllocatorEnv(lib ?? ''), HEIMDALL_CONFIG: '' } }, message);
    embedded.cleanup();
  }, processTimeout(2));
});
