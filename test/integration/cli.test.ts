/** The built `heimdall` binary as a user runs it: a real process, real signals, real exit codes. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAIN, startAgentProcess } from '../support/agent-process.js';
import { expectStoreRefused, PROCESS_START_MS, processTimeout, runCli, type CliResult } from '../support/cli.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const run = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(args, { env });

interface Running {
  child: ChildProcessWithoutNullStreams;
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** Starts the agent on `configText`; `args` are the command line, the config file's path in place of `$CONFIG`. */
function start(configText: string, args = ['run', '--config', '$CONFIG']): { running: Running; dir: ReturnType<typeof tempDir> } {
  const dir = tempDir();
  const config = join(dir.path, 'heimdall.yaml');
  writeFileSync(config, configText.replaceAll('$DATA', join(dir.path, 'data')));
  const child = spawn(process.execPath, [MAIN, ...args.map((a) => a.replace('$CONFIG', config))], { stdio: 'pipe', env: { ...process.env, HEIMDALL_CONFIG: config } });
  children.push(child);
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
      waiters.forEach((w) => w());
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 4 * PROCESS_START_MS) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; log so far:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
      const check = () => {
        const hit = lines.find(pred);
        if (hit) {
          clearTimeout(timer);
          resolve(hit);
        }
      };
      waiters.push(check);
      check();
    });
  return { running: { child, lines, exited, waitFor }, dir };
}

const CONFIG = `
server:
  grpc: { address: "127.0.0.1:0" }
  otlp_http: { address: "127.0.0.1:0" }
  admin: { address: "127.0.0.1:0" }
  ratelimit: { address: "127.0.0.1:0" }
storage:
  embedded: { path: "$DATA" }
shutdown: { drain: 200ms, timeout: 10s }
`;

describe('heimdall run', () => {
  // How fast it is ready is measured by bench/foundation.mjs (cold start to /readyz 200), not here:
  // on a loaded 2-core machine the same start took 16 s.
  it('becomes ready on embedded storage and exits 0 on SIGTERM after draining', async () => {
    const { running, dir } = start(CONFIG);
    const admin = await running.waitFor((l) => l.component === 'admin' && l.msg === 'HTTP server listening');
    const url = `http://127.0.0.1:${String(admin.port)}`;
    await running.waitFor((l) => l.msg === 'Heimdall started');
    await until(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, 4 * PROCESS_START_MS, '/readyz 200');
    running.child.kill('SIGTERM');
    await running.waitFor((l) => l.msg === 'shutting down: health is NOT_SERVING, draining');
    const during = await fetch(`${url}/readyz`).catch(() => undefined);
    expect(during?.status).toBe(503);
    expect(await running.exited).toBe(0);
    const msgs = running.lines.map((l) => l.msg);
    const order = ['signal received', 'gRPC server stopped', 'storage closed', 'Heimdall stopped'].map((m) => msgs.indexOf(m));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    dir.cleanup();
  }, processTimeout(1));

  it('exits at once on a second signal', async () => {
    const { running, dir } = start(CONFIG.replace('drain: 200ms, timeout: 10s', 'drain: 20s, timeout: 30s'));
    await running.waitFor((l) => l.msg === 'Heimdall started');
    running.child.kill('SIGTERM');
    await running.waitFor((l) => l.msg === 'shutting down: health is NOT_SERVING, draining');
    running.child.kill('SIGINT');
    expect(await running.exited).toBe(130);
    dir.cleanup();
    // An agent start and two log waits: 30 s ran out under the full suite's load (twice).
  }, processTimeout(1, 30_000));

  it('exits non-zero with the key path when the config is invalid', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'bad.yaml');
    writeFileSync(file, 'storage:\n  clickhouse:\n    url: foo\nserver:\n  grpc:\n    adress: 1\n');
    const r = await run(['run', '--config', file]);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('storage.clickhouse.url: expected a URL such as "http://clickhouse:8123", got "foo"');
    expect(r.stderr).toContain('server.grpc.adress: unknown key');
    dir.cleanup();
  }, processTimeout(1));

  it('says how to fix it when chdb or its build for this platform is not installed and no server is configured', async () => {
    const dir = tempDir();
    const platform = `${process.platform}-${process.arch}`;
    const server = 'Or run with a ClickHouse server instead: set storage.mode: server and storage.clickhouse.url (for example "http://clickhouse:8123") in the config file.';
    const chdbVersion = (JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'node_modules', 'chdb', 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> }).optionalDependencies;
    const build = Object.keys(chdbVersion).find((p) => p.startsWith(`@chdb/lib-${platform}`)) ?? '';
    const cases = {
      'no-chdb.mjs': `the embedded store needs chdb (npm package "chdb", with its native build for ${platform}), and it is not installed. Install it with \`npm install chdb\`. ${server}`,
      'no-chdb-build.mjs':
        `the embedded store needs chdb's native build for ${platform} (npm package "${build}"), and it is not installed ` +
        `(npm install adds only the builds package-lock.json lists: linux-x64's). Install it with \`npm install --no-save ${build}@${chdbVersion[build] ?? ''}\`. ${server}`,
    };
    for (const [hook, message] of Object.entries(cases)) await expectStoreRefused({ nodeArgs: ['--import', join(import.meta.dirname, '..', 'support', hook)], cwd: dir.path, env: { HEIMDALL_CONFIG: '' } }, message);
    dir.cleanup();
  }, processTimeout(4));

  it('fails to start with a clear message when a port is taken', async () => {
    const { running, dir } = start(CONFIG);
    const grpc = await running.waitFor((l) => l.msg === 'gRPC server listening');
    const second = start(CONFIG.replace('address: "127.0.0.1:0" }\n  otlp_http', `address: "127.0.0.1:${String(grpc.port)}" }\n  otlp_http`));
    const fatal = await second.running.waitFor((l) => l.level === 'fatal');
    expect(String(fatal.msg)).toContain(`cannot listen on 127.0.0.1:${String(grpc.port)} (gRPC)`);
    expect(await second.running.exited).toBe(1);
    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    dir.cleanup();
    second.dir.cleanup();
  }, processTimeout(2));
});

describe('heimdall commands', () => {
  it('check-config prints the effective config with secrets masked', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'h.yaml');
    writeFileSync(file, 'storage:\n  clickhouse:\n    url: http://ch:8123\n    password: ${CH_PASSWORD}\n');
    const [r, defaults] = await Promise.all([run(['check-config', '--config', file], { CH_PASSWORD: 'hunter2' }), run(['check-config'], { HEIMDALL_CONFIG: '' })]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`# ${file} is valid; sha256 `);
    expect(r.stdout).toContain('password: "***"');
    expect(r.stdout).toContain('url: http://ch:8123');
    expect(r.stdout).not.toContain('hunter2');
    expect(defaults.status).toBe(0);
    expect(defaults.stdout).toContain('# built-in defaults is valid');
    expect(defaults.stdout).toContain('address: 127.0.0.1:4317');
    dir.cleanup();
  }, processTimeout(2));

  it('migrate applies the schema and exits; a second run applies nothing', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'h.yaml');
    writeFileSync(file, `storage:\n  embedded:\n    path: ${join(dir.path, 'data')}\n`);
    const first = await run(['migrate', '--config', file]);
    expect(first.status).toBe(0);
    expect(first.stdout).toContain('(applied: 1, 2, 3, 4, 5, 6, 7, 8, 9; retention updated: none)');
    const second = await run(['migrate', '--config', file]);
    expect(second.stdout).toContain('(applied: none; retention updated: none)');
    dir.cleanup();
  }, processTimeout(2));

  it('runs the agent when no command is given: `heimdall` and `heimdall --config FILE`', async () => {
    for (const args of [[], ['--config', '$CONFIG']]) {
      const { running, dir } = start(CONFIG, args);
      await running.waitFor((l) => l.msg === 'Heimdall started');
      running.child.kill('SIGTERM');
      expect(await running.exited).toBe(0);
      dir.cleanup();
    }
  }, processTimeout(2));

  it('answers a mistyped command as unknown, with a suggestion, and exits 1', async () => {
    const [r, far] = await Promise.all([run(['evnets']), run(['frobnicate', '--config', 'x.yaml'])]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith("error: unknown command 'evnets'\n(Did you mean events?)\n\nUsage: heimdall [options] [command]\n")).toBe(true);
    expect(far.status).toBe(1);
    expect(far.stderr.split('\n')[0]).toBe("error: unknown command 'frobnicate'");
  }, processTimeout(1));

  it('version and --help', async () => {
    const commands = [[], ['run'], ['check-config'], ['migrate'], ['version']];
    // Independent runs: started together, they share the cores instead of queueing.
    const [version, ...helps] = await Promise.all([run(['version']), ...commands.map((cmd) => run([...cmd, '--help']))]);
    expect(version.stdout).toMatch(/^heimdall 0\.1\.0 \(build \S+, node v\d+/);
    for (const r of helps) {
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('Usage: heimdall');
    }
  }, processTimeout(6));
});

describe('heimdall jobs and heimdall job', () => {
  it('create, list, trigger --watch, pause, resume, runs, delete; job submit --watch, cancel; bad input exits 1 naming the field', async () => {
    const dir = tempDir();
    const config = join(dir.path, 'heimdall.yaml');
    writeFileSync(config, `${CONFIG.replace('$DATA', join(dir.path, 'data'))}jobs: { export_dir: "${join(dir.path, 'exports')}", system_check: { enabled: false } }\n`);
    const agent = await startAgentProcess(config);
    const cli = (...args: string[]) => run([...args, '--addr', agent.addr]);
    try {
      // Commands that do not depend on each other's effect run together.
      const [bad, params] = await Promise.all([cli('jobs', 'create', 'x', '--schedule', '* * *', '--kind', 'retention'), cli('job', 'submit', 'export', '--params', '{"source": "events", "format": "xml"}')]);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/^heimdall: INVALID_ARGUMENT: job\.schedule: invalid cron expression "\* \* \*"/);
      expect(params.stderr).toMatch(/job\.params\.format: expected one of "jsonl", "csv", got "xml"/);

      const created = await cli('jobs', 'create', 'nightly-check', '--schedule', '0 3 * * *', '--tz', 'Europe/Oslo', '--kind', 'system-check', '--params', '{"threshold": 30}', '--attempts', '2');
      expect(created.stderr).toBe('');
      expect(created.stdout).toMatch(/^NAME\s+SCHEDULE\s+TIME ZONE\s+KIND/);
      expect(created.stdout).toMatch(/nightly-check\s+0 3 \* \* \*\s+Europe\/Oslo\s+system-check\s+pod\s+api\s+active\s+\d{4}-/);

      const triggered = await cli('jobs', 'trigger', 'nightly-check', '--watch');
      expect(triggered.status).toBe(0);
      expect(triggered.stdout.trim().split('\n').at(-1)).toMatch(/succeeded 100%: score [\d.]+ \(storage [\d.]+, queue [\d.]+, disk [\d.]+\)$/);

      expect((await cli('jobs', 'pause', 'nightly-check')).stdout).toMatch(/nightly-check .* paused/);
      expect((await cli('jobs', 'resume', 'nightly-check')).stdout).toMatch(/nightly-check .* active/);
      const [runs, list] = await Promise.all([cli('jobs', 'runs', 'nightly-check', '--json'), cli('jobs', 'list')]);
      const rows = runs.stdout.trim().split('\n').map((l) => JSON.parse(l) as { trigger: string; status: string; attempt: number });
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ trigger: 'JOB_TRIGGER_MANUAL', status: 'JOB_STATUS_SUCCEEDED', attempt: 1 });
      expect(list.stdout).toContain('nightly-check');
      expect((await cli('jobs', 'delete', 'nightly-check')).stdout.trim()).toBe('deleted nightly-check');
      const gone = await cli('jobs', 'get', 'nightly-check');
      expect(gone.status).toBe(1);
      expect(gone.stderr.trim()).toBe('heimdall: NOT_FOUND: no scheduled job "nightly-check"');

      const submitted = await cli('job', 'submit', 'system-check', '--watch');
      expect(submitted.status).toBe(0);
      expect(submitted.stdout.trim().split('\n').at(-1)).toMatch(/succeeded 100%/);
      const id = (await cli('job', 'submit', 'http-check', '--params', '{"url": "http://127.0.0.1:9/", "timeout": "30s"}', '--attempts', '5')).stdout.trim();
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      const cancelled = await cli('job', 'cancel', id);
      // The probe fails at once and is retried: the cancel may land on any attempt.
      expect(cancelled.stdout.trim()).toMatch(new RegExp(`^${id} cancelled \\d+%( \\(attempt \\d\\))?: cancelled`));
      expect((await cli('job', 'watch', id)).status).toBe(1); // a watch of a job that did not succeed exits 1
    } finally {
      await agent.stop();
      dir.cleanup();
    }
  }, processTimeout(16)); // an agent and fifteen CLI runs

  it('check-config names a bad job by its key path', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'bad.yaml');
    writeFileSync(file, 'jobs:\n  scheduled:\n    - { name: a, schedule: "* * * * *", kind: http-check, time_zone: Nowhere/City }\n    - { name: a, schedule: "*/5 * * * * *", kind: export, params: { source: events }, colour: blue }\n');
    const r = await run(['check-config', '--config', file]);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('jobs.scheduled[0].time_zone: unknown time zone "Nowhere/City"');
    expect(r.stderr).toContain('jobs.scheduled[0].params.url: ');
    expect(r.stderr).toContain('jobs.scheduled[1].colour: unknown key');
    dir.cleanup();
  }, processTimeout(1));

  it('check-config validates auth.tokens_file and never prints a secret, in errors or in the effective config', async () => {
    const dir = tempDir();
    const SECRETS = ['shortsecret1', '31415926535', 'Bearer prod-probe-credential', '27182818284', 'hunter2-in-url', 'key-in-query-42', 'file-token-xy', 'valid-token-0000000001', 'valid-file-token-00000001'];
    const never = (r: CliResult) => {
      for (const secret of SECRETS) expect(`${r.stdout}${r.stderr}`).not.toContain(secret);
    };
    const job = (headers: string, url = 'https://probe.example/health') => `jobs:\n  scheduled:\n    - { name: probe, schedule: "* * * * *", kind: http-check, params: { url: "${url}", headers: ${headers} } }\n`;
    // Bad values of secret fields are named, never quoted.
    const bad = join(dir.path, 'bad.yaml');
    writeFileSync(
      bad,
      'auth:\n  tokens: [{ name: short, token: shortsecret1, scopes: [query] }]\nstorage:\n  clickhouse: { url: "http://u:hunter2-in-url@ch:8123", password: 31415926535 }\n' +
        job('{ Authorization: "Bearer prod-probe-credential", X-Api-Key: 27182818284 }'),
    );
    const badUrl = join(dir.path, 'bad-url.yaml');
    writeFileSync(badUrl, 'storage:\n  clickhouse: { url: "ftp://u:hunter2-in-url@ch:8123" }\n');
    // tokens_file: missing, a bad entry (named, not quoted), valid; one config and tokens file each, checked together.
    const withTokens = (name: string, entries?: string) => {
      const tokens = join(dir.path, `${name}-tokens.yaml`);
      if (entries !== undefined) writeFileSync(tokens, entries);
      const config = join(dir.path, `${name}.yaml`);
      writeFileSync(config, `auth:\n  enabled: true\n  tokens_file: ${tokens}\n  tokens: [{ name: inline, token: valid-token-0000000001, scopes: [admin] }]\n` + job('{ Authorization: "Bearer prod-probe-credential" }', 'https://probe.example/health?api_key=key-in-query-42&region=eu'));
      return { tokens, config };
    };
    const files = {
      missing: withTokens('missing'),
      short: withTokens('short', '- { name: from-file, token: file-token-xy, scopes: [query] }\n'),
      ok: withTokens('ok', '- { name: from-file, token: valid-file-token-00000001, scopes: [query] }\n'),
    };
    const check = (file: string) => run(['check-config', '--config', file]);
    const [invalid, url, missing, shortToken, ok] = await Promise.all([check(bad), check(badUrl), check(files.missing.config), check(files.short.config), check(files.ok.config)]);
    expect(invalid.status).toBe(78);
    expect(invalid.stderr).toContain('auth.tokens[0].token: must be at least 16 characters');
    expect(invalid.stderr).toContain('storage.clickhouse.password: expected string');
    expect(invalid.stderr).toContain('jobs.scheduled[0].params.headers.X-Api-Key: expected string');
    never(invalid);
    expect(url.status).toBe(78);
    expect(url.stderr).toContain('storage.clickhouse.url: expected a URL such as "http://clickhouse:8123", got "ftp://***@ch:8123"');
    never(url);
    expect(missing.status).toBe(78);
    expect(missing.stderr).toContain(`cannot read auth.tokens_file ${files.missing.tokens}`);
    expect(shortToken.status).toBe(78);
    expect(shortToken.stderr).toContain(`auth.tokens_file ${files.short.tokens}: [0.token] must be at least 16 characters`);
    never(shortToken);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain(`# auth.tokens_file ${files.ok.tokens} is valid\n# 2 API tokens`);
    expect(ok.stdout).toContain('Authorization: "***"');
    expect(ok.stdout).toContain('url: https://probe.example/health?api_key=***&region=eu');
    never(ok);
    dir.cleanup();
  }, processTimeout(5));
});
