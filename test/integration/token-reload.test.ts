/**
 * API tokens reload without a restart, on the built agent as a process: a tokens file mounted as a
 * Kubernetes Secret volume (the file is a symlink through `..data`, which the kubelet swaps), and
 * SIGHUP for the tokens in the configuration file. In process: a revoked token's open streams end,
 * every change of a token is logged, and a tokens file's YAML never reaches stderr.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { JobService, JobStatus } from '../../src/gen/heimdall/v1/jobs_pb.js';
import { SystemService } from '../../src/gen/heimdall/v1/system_pb.js';
import { MAIN, startAgentProcess, type AgentProcess, writeAgentConfig } from '../support/agent-process.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const TOKENS = {
  ops: 'ops-token-from-secret-000001',
  oncall: 'oncall-token-from-secret-001',
  inline: 'inline-token-in-config-00001',
  added: 'added-by-sighup-token-000001',
};

describe('token reload', () => {
  const dir = tempDir();
  const secret = join(dir.path, 'secret');
  const config = join(dir.path, 'heimdall.yaml');
  let agent: AgentProcess;
  let version = 0;

  /** Publishes a new version of the Secret as the kubelet does: a new directory, then `..data` swapped atomically. */
  const publish = (tokensYaml: string): void => {
    const name = `..2026_12_01_00_00_0${++version}`;
    mkdirSync(join(secret, name));
    writeFileSync(join(secret, name, 'tokens.yaml'), tokensYaml);
    symlinkSync(name, join(secret, '..data_tmp'));
    renameSync(join(secret, '..data_tmp'), join(secret, '..data'));
  };
  const writeConfig = (inline: Array<{ name: string; token: string }>): void => {
    writeAgentConfig(dir.path, {
      jobs: { system_check: { enabled: false } },
      auth: { enabled: true, tokens_file: join(secret, 'tokens.yaml'), tokens: inline.map((t) => ({ ...t, scopes: ['admin'] })) },
    });
  };
  const code = (token: string): Promise<status> =>
    connect({ addr: agent.addr, token })
      .unary(SystemService.method.getStatus, {})
      .then(
        () => status.OK,
        (err: { code: status }) => err.code,
      );
  const authComponent = async (token: string) => {
    const res = await fetch(`http://127.0.0.1:${agent.ports.admin}/status`, { headers: { authorization: `Bearer ${token}` } });
    return ((await res.json()) as { components: Array<{ name: string; state: string; reason: string }> }).components.find((c) => c.name === 'auth');
  };

  beforeAll(async () => {
    mkdirSync(secret);
    publish(`- { name: ops, token: ${TOKENS.ops}, scopes: [admin] }\n- { name: oncall, token: ${TOKENS.oncall}, scopes: [admin] }\n`);
    symlinkSync('..data/tokens.yaml', join(secret, 'tokens.yaml'));
    writeConfig([{ name: 'inline', token: TOKENS.inline }]);
    agent = await startAgentProcess(config);
  });
  afterAll(async () => {
    await agent.stop();
    dir.cleanup();
  });

  it('stops accepting a token revoked in the Secret, without a restart', async () => {
    expect(await code(TOKENS.ops)).toBe(status.OK);
    expect(await code(TOKENS.oncall)).toBe(status.OK);
    publish(`- { name: oncall, token: ${TOKENS.oncall}, scopes: [admin] }\n`);
    await until(async () => (await code(TOKENS.ops)) === status.UNAUTHENTICATED, 15_000, 'the revoked token to be refused');
    expect(await code(TOKENS.oncall)).toBe(status.OK);
    expect(await code(TOKENS.inline)).toBe(status.OK);
    expect(agent.lines.find((l) => l.msg === 'tokens reloaded')).toMatchObject({ component: 'auth', tokens: 2, removed: ['ops'], added: [] });
  });

  it('keeps the previous tokens when the file is invalid, says why in the log and in /status, and recovers', async () => {
    publish(`- { name: oncall, token: [${TOKENS.oncall}\n`);
    const logged = await until(() => agent.lines.find((l) => l.msg === 'tokens not reloaded: keeping the previous tokens'), 15_000, 'the refusal to be logged');
    expect(logged).toMatchObject({ level: 'error', component: 'auth' });
    expect(String(logged.reason)).toMatch(/tokens\.yaml is not valid YAML/);
    expect(await code(TOKENS.oncall)).toBe(status.OK);
    expect(await code(TOKENS.ops)).toBe(status.UNAUTHENTICATED);
    const degraded = await authComponent(TOKENS.oncall);
    expect(degraded).toMatchObject({ state: 'degraded' });
    expect(degraded?.reason).toMatch(/^tokens not reloaded, the previous 2 kept: auth\.tokens_file .* is not valid YAML/);
    expect(await (await fetch(`http://127.0.0.1:${agent.ports.admin}/metrics`)).text()).toMatch(/^heimdall_auth_reload_errors_total [1-9]/m);
    // A file that parses but holds a bad token is refused the same way, naming the entry, not the value.
    publish('- { name: short, token: too-short, scopes: [admin] }\n');
    await until(async () => (await authComponent(TOKENS.oncall))?.reason.includes('[0.token] must be at least 16 characters'), 15_000, 'the bad entry to be reported');
    expect(await code('too-short')).toBe(status.UNAUTHENTICATED);
    publish(`- { name: oncall, token: ${TOKENS.oncall}, scopes: [admin] }\n- { name: ops, token: ${TOKENS.ops}, scopes: [admin] }\n`);
    await until(async () => (await authComponent(TOKENS.oncall))?.state === 'ready', 15_000, 'auth to be ready again');
    expect(await code(TOKENS.ops)).toBe(status.OK);
    // Token values never reach the log.
    const log = agent.lines.map((l) => JSON.stringify(l)).join('\n');
    for (const token of [...Object.values(TOKENS), 'too-short']) expect(log).not.toContain(token);
  });

  it('reloads the tokens of the configuration file on SIGHUP', async () => {
    writeConfig([{ name: 'added', token: TOKENS.added }]);
    agent.child.kill('SIGHUP');
    await until(async () => (await code(TOKENS.added)) === status.OK, 15_000, 'the added token to work');
    expect(await code(TOKENS.inline)).toBe(status.UNAUTHENTICATED);
    expect(await code(TOKENS.oncall)).toBe(status.OK);
  });
});

describe('token reload, in process', () => {
  const dir = tempDir();
  const file = join(dir.path, 'tokens.yaml');
  const T = { ops: 'ops-token-watching-a-job-01', keeper: 'keeper-token-stays-valid-01', viewer: 'viewer-token-changes-scope1' };
  /** Replaces the tokens file at once (rename), as a deploy tool would. */
  const publish = (yaml: string): void => {
    writeFileSync(`${file}.new`, yaml);
    renameSync(`${file}.new`, file);
  };
  const line = (name: string, token: string, scopes: string, tenant?: string) => `- { name: ${name}, token: ${token}, scopes: [${scopes}]${tenant ? `, tenant: ${tenant}` : ''} }\n`;
  let t: TestAgent;
  // A server that never answers: an http-check against it keeps its job running.
  let silent: Server;
  const authReason = () => t.agent.health.component('auth');

  beforeAll(async () => {
    publish(line('ops', T.ops, 'admin') + line('keeper', T.keeper, 'admin') + line('viewer', T.viewer, 'query'));
    silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t = await startTestAgent({ jobs: { system_check: { enabled: false } }, auth: { enabled: true, tokens_file: file } });
  });
  afterAll(async () => {
    await t.stop();
    silent.closeAllConnections();
    silent.close();
    dir.cleanup();
  });
  afterEach(() => vi.restoreAllMocks());

  it('ends an open WatchJob stream with UNAUTHENTICATED once its token is revoked; the job goes on', async () => {
    const ops = connect({ addr: t.grpcAddress, token: T.ops });
    const { job } = await ops.unary(JobService.method.submitJob, { kind: 'http-check', params: { url: `http://127.0.0.1:${(silent.address() as { port: number }).port}/`, timeout: '120s' } });
    const id = job?.id ?? '';
    const seen: JobStatus[] = [];
    const stream = ops.serverStream(JobService.method.watchJob, { id }, (m) => void seen.push(m.job?.status ?? JobStatus.UNSPECIFIED)).then(
      () => 'ended without an error',
      (err: { code: status; details: string }) => err,
    );
    await until(() => seen.includes(JobStatus.RUNNING), 15_000, 'the job to run');
    publish(line('keeper', T.keeper, 'admin') + line('viewer', T.viewer, 'query'));
    // Before, the stream went on until the job ended (two minutes here), sending every update.
    const ended = await until(() => Promise.race([stream, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]), 15_000, 'the stream to end');
    expect(ended).toMatchObject({ code: status.UNAUTHENTICATED, details: 'unknown API token (the tokens were reloaded while this stream was open)' });
    const keeper = connect({ addr: t.grpcAddress, token: T.keeper });
    expect((await keeper.unary(JobService.method.getJob, { id })).job?.status).toBe(JobStatus.RUNNING);
    await keeper.unary(JobService.method.cancelJob, { id });
  });

  it('logs a change of scopes or tenant, not only tokens added and removed', async () => {
    const reloaded = () => t.logs.filter((l) => l.msg === 'tokens reloaded');
    const before = reloaded().length;
    publish(line('keeper', T.keeper, 'admin') + line('viewer', T.viewer, 'query, admin'));
    const changed = await until(() => reloaded()[before], 15_000, 'the reload to be logged');
    expect(changed).toMatchObject({ component: 'auth', tokens: 2, added: [], removed: [], changed: ['viewer'] });
    publish(line('keeper', T.keeper, 'admin') + line('viewer', T.viewer, 'query, admin', 'acme'));
    expect(await until(() => reloaded()[before + 1], 15_000, 'the second reload to be logged')).toMatchObject({ added: [], removed: [], changed: ['viewer'] });
  });

  it('refuses a tokens file with YAML warnings, naming only line and column, and writes none of it to stderr', async () => {
    const warnings = vi.spyOn(process, 'emitWarning');
    publish(`- name: vaulted\n  token: !vault SUPERSECRETTOKENVALUE99\n  scopes: [query]\n${line('keeper', T.keeper, 'admin')}`);
    const degraded = await until(() => (authReason()?.state === 'degraded' ? authReason() : undefined), 15_000, 'the file to be refused');
    expect(degraded?.reason).toBe(`tokens not reloaded, the previous 2 kept: auth.tokens_file ${file} is not valid YAML: TAG_RESOLVE_FAILED at line 2, column 10`);
    // Before, the yaml package printed the warning with the line it quotes (the token) to stderr, and the token was taken.
    expect(warnings).not.toHaveBeenCalled();
    expect(JSON.stringify(t.logs)).not.toContain('SUPERSECRET');
    writeFileSync(join(dir.path, 'heimdall.yaml'), `auth: { enabled: true, tokens_file: ${file} }\n`);
    const check = await promisify(execFile)(process.execPath, [MAIN, 'check-config', '--config', join(dir.path, 'heimdall.yaml')], { encoding: 'utf8' }).then(
      (r) => ({ code: 0, ...r }),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    expect(check.code).not.toBe(0);
    expect(check.stderr).toContain('is not valid YAML: TAG_RESOLVE_FAILED at line 2, column 10');
    expect(check.stdout + check.stderr).not.toContain('SUPERSECRET');
  });
});

