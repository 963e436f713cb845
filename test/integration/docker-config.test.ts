/** The container image's configuration (deploy/docker/heimdall.yaml): exposed listeners, one token from the environment. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { substituteEnv } from '../../src/config/substitute.js';
import { splitHostPort } from '../../src/config/host-port.js';
import { MAIN, startAgentProcess, type AgentProcess } from '../support/agent-process.js';
import { tempDir } from '../support/temp.js';

const ROOT = join(import.meta.dirname, '..', '..');
const FILE = join(ROOT, 'deploy', 'docker', 'heimdall.yaml');
const TOKEN = 'docker-test-token-0123456789';
/** The environment of `docker run` without -e: nothing of the test runner's Heimdall settings. */
const BARE = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HEIMDALL_')));

let agent: AgentProcess | undefined;
let dir: ReturnType<typeof tempDir> | undefined;
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  dir?.cleanup();
});

describe('the image configuration', () => {
  it('is the one the Dockerfile installs, binding the exposed ports on every interface', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const configPath = /^ENV HEIMDALL_CONFIG=(\S+)$/m.exec(dockerfile)?.[1];
    expect(dockerfile).toContain(`COPY deploy/docker/heimdall.yaml ${String(configPath)}\n`);
    const exposed = (/^EXPOSE (.+)$/m.exec(dockerfile)?.[1] ?? '').split(/\s+/).map(Number);
    const config = validateConfig(substituteEnv(parse(readFileSync(FILE, 'utf8')), { HEIMDALL_TOKEN: TOKEN }));
    for (const listener of [config.server.grpc, config.server.otlp_http, config.server.admin]) {
      expect(splitHostPort(listener.address)?.host).toBe('0.0.0.0');
      expect(exposed).toContain(splitHostPort(listener.address)?.port);
    }
    expect(config.auth.enabled).toBe(true);
  });

  it('refuses to start without HEIMDALL_TOKEN, naming it', () => {
    const r = spawnSync(process.execPath, [MAIN, 'check-config'], { env: { ...BARE, HEIMDALL_CONFIG: FILE }, encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe(
      `heimdall: invalid configuration in ${FILE}:\n  auth.tokens[0].token: environment variable HEIMDALL_TOKEN is not set (write \${HEIMDALL_TOKEN:-default} to give a default)\n`,
    );
    expect(r.status).toBe(78);
  });

  it('starts exposed with the token from the environment: OTLP with it is accepted, without it refused', async () => {
    dir = tempDir();
    // As `docker run -e HEIMDALL_TOKEN=...`, on free ports instead of the fixed ones.
    const env = { ...BARE, HEIMDALL_TOKEN: TOKEN, HEIMDALL_GRPC_ADDRESS: '0.0.0.0:0', HEIMDALL_OTLP_HTTP_ADDRESS: '0.0.0.0:0', HEIMDALL_ADMIN_ADDRESS: '0.0.0.0:0' };
    agent = await startAgentProcess(FILE, { env, cwd: dir.path });
    const listening = agent.lines.filter((l) => l.msg === 'HTTP server listening' || l.msg === 'gRPC server listening');
    expect(listening.map((l) => String(l.address).split(':')[0])).toEqual(['0.0.0.0', '0.0.0.0', '0.0.0.0']);
    const url = `http://127.0.0.1:${String(agent.ports.otlp_http)}/v1/traces`;
    const send = (headers: Record<string, string>) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"resourceSpans":[]}' });
    expect((await send({})).status).toBe(401);
    expect((await send({ authorization: 'Bearer wrong-token-0123456789' })).status).toBe(401);
    expect((await send({ authorization: `Bearer ${TOKEN}` })).status).toBe(200);
  }, 60_000);
});
