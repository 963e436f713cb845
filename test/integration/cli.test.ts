/** The built `heimdall` binary as a user runs it: a real process, real signals, real exit codes. */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentProcess } from '../support/agent-process.js';
import { tempDir } from '../support/temp.js';

const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'main.js');

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
}

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
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) =>
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
storage:
  embedded: { path: "$DATA" }
shutdown: { drain: 200ms, timeout: 10s }
`;

describe('heimdall run', () => {
  it('is ready in under 5 s on embedded storage and exits 0 on SIGTERM after draining', async () => {
    const t0 = performance.now();
    const { running, dir } = start(CONFIG);
    const admin = await running.waitFor((l) => l.component === 'admin' && l.msg === 'HTTP server listening');
    const url = `http://127.0.0.1:${String(admin.port)}`;
    await running.waitFor((l) => l.msg === 'Heimdall started');
    let readyAfter: number;
    for (;;) {
      const res = await fetch(`${url}/readyz`).catch(() => undefined);
      if (res?.status === 200) {
        readyAfter = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`heimdall run: /readyz 200 after ${Math.round(readyAfter)} ms (process start included)`);
    expect(readyAfter).toBeLessThan(5_000);
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
  });

  it('exits at once on a second signal', async () => {
    const { running, dir } = start(CONFIG.replace('drain: 200ms, timeout: 10s', 'drain: 20s, timeout: 30s'));
    await running.waitFor((l) => l.msg === 'Heimdall started');
    running.child.kill('SIGTERM');
    await running.waitFor((l) => l.msg === 'shutting down: health is NOT_SERVING, draining');
    running.child.kill('SIGINT');
    expect(await running.exited).toBe(130);
    dir.cleanup();
  }, 60_000); // an agent start and two waits for log lines: 30 s ran out once on a loaded 2-core machine

  it('exits non-zero with the key path when the config is invalid', () => {
    const dir = tempDir();
    const file = join(dir.path, 'bad.yaml');
    writeFileSync(file, 'storage:\n  clickhouse:\n    url: foo\nserver:\n  grpc:\n    adress: 1\n');
    const r = run(['run', '--config', file]);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('storage.clickhouse.url: expected a URL such as "http://clickhouse:8123", got "foo"');
    expect(r.stderr).toContain('server.grpc.adress: unknown key');
    dir.cleanup();
  });

  it('says how to fix it when chdb or its build for this platform is not installed and no server is configured', () => {
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
    for (const [hook, message] of Object.entries(cases)) {
      const without = (command: string) =>
        spawnSync(process.execPath, ['--import', join(import.meta.dirname, '..', 'support', hook), MAIN, command], {
          cwd: dir.path,
          env: { ...process.env, HEIMDALL_CONFIG: '' },
          encoding: 'utf8',
          timeout: 20_000,
        });
      const migrate = without('migrate');
      expect(migrate.stderr).toBe(`heimdall: ${message}\n`);
      expect(migrate.status).toBe(1);
      const agent = without('run');
      expect(agent.status).toBe(1);
      const fatal = agent.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 'fatal');
      expect(fatal?.msg).toBe(`cannot start: ${message}`);
    }
    dir.cleanup();
  }, 60_000); // four agent processes

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
  });
});

describe('heimdall commands', () => {
  it('check-config prints the effective config with secrets masked', () => {
    const dir = tempDir();
    const file = join(dir.path, 'h.yaml');
    writeFileSync(file, 'storage:\n  clickhouse:\n    url: http://ch:8123\n    password: ${CH_PASSWORD}\n');
    const r = run(['check-config', '--config', file], { CH_PASSWORD: 'hunter2' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`# ${file} is valid; sha256 `);
    expect(r.stdout).toContain('password: "***"');
    expect(r.stdout).toContain('url: http://ch:8123');
    expect(r.stdout).not.toContain('hunter2');
    const defaults = run(['check-config'], { HEIMDALL_CONFIG: '' });
    expect(defaults.status).toBe(0);
    expect(defaults.stdout).toContain('# built-in defaults is valid');
    expect(defaults.stdout).toContain('address: 127.0.0.1:4317');
    dir.cleanup();
  });

  it('migrate applies the schema and exits; a second run applies nothing', () => {
    const dir = tempDir();
    const file = join(dir.path, 'h.yaml');
    writeFileSync(file, `storage:\n  embedded:\n    path: ${join(dir.path, 'data')}\n`);
    const first = run(['migrate', '--config', file]);
    expect(first.status).toBe(0);
    expect(first.stdout).toContain('(applied: 1, 2, 3, 4, 5, 6, 7; retention updated: none)');
    const second = run(['migrate', '--config', file]);
    expect(second.stdout).toContain('(applied: none; retention updated: none)');
    dir.cleanup();
  });

  it('runs the agent when no command is given: `heimdall` and `heimdall --config FILE`', async () => {
    for (const args of [[], ['--config', '$CONFIG']]) {
      const { running, dir } = start(CONFIG, args);
      await running.waitFor((l) => l.msg === 'Heimdall started');
      running.child.kill('SIGTERM');
      expect(await running.exited).toBe(0);
      dir.cleanup();
    }
  }, 90_000); // two agent starts on a loaded 2-core machine

  it('answers a mistyped command as unknown, with a suggestion, and exits 1', () => {
    const r = run(['evnets']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith("error: unknown command 'evnets'\n(Did you mean events?)\n\nUsage: heimdall [options] [command]\n")).toBe(true);
    const far = run(['frobnicate', '--config', 'x.yaml']);
    expect(far.status).toBe(1);
    expect(far.stderr.split('\n')[0]).toBe("error: unknown command 'frobnicate'");
  });

  it('version and --help', () => {
    expect(run(['version']).stdout).toMatch(/^heimdall 0\.1\.0 \(build \S+, node v\d+/);
    for (const cmd of [[], ['run'], ['check-config'], ['migrate'], ['version']]) {
      const r = run([...cmd, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('Usage: heimdall');
    }
  });
});

describe('heimdall jobs and heimdall job', () => {
  it('create, list, trigger --watch, pause, resume, runs, delete; job submit --watch, cancel; bad input exits 1 naming the field', async () => {
    const dir = tempDir();
    const config = join(dir.path, 'heimdall.yaml');
    writeFileSync(config, `${CONFIG.replace('$DATA', join(dir.path, 'data'))}jobs: { export_dir: "${join(dir.path, 'exports')}", system_check: { enabled: false } }\n`);
    const agent = await startAgentProcess(config);
    const cli = (...args: string[]) => run([...args, '--addr', agent.addr]);
    try {
      const created = cli('jobs', 'create', 'nightly-check', '--schedule', '0 3 * * *', '--tz', 'Europe/Oslo', '--kind', 'system-check', '--params', '{"threshold": 30}', '--attempts', '2');
      expect(created.stderr).toBe('');
      expect(created.stdout).toMatch(/^NAME\s+SCHEDULE\s+TIME ZONE\s+KIND/);
      expect(created.stdout).toMatch(/nightly-check\s+0 3 \* \* \*\s+Europe\/Oslo\s+system-check\s+pod\s+api\s+active\s+\d{4}-/);

      const triggered = cli('jobs', 'trigger', 'nightly-check', '--watch');
      expect(triggered.status).toBe(0);
      expect(triggered.stdout.trim().split('\n').at(-1)).toMatch(/succeeded 100%: score \d+ \(storage \d+, queue \d+, disk \d+\)$/);

      expect(cli('jobs', 'pause', 'nightly-check').stdout).toMatch(/nightly-check .* paused/);
      expect(cli('jobs', 'resume', 'nightly-check').stdout).toMatch(/nightly-check .* active/);
      const runs = cli('jobs', 'runs', 'nightly-check', '--json');
      const rows = runs.stdout.trim().split('\n').map((l) => JSON.parse(l) as { trigger: string; status: string; attempt: number });
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ trigger: 'JOB_TRIGGER_MANUAL', status: 'JOB_STATUS_SUCCEEDED', attempt: 1 });
      expect(cli('jobs', 'list').stdout).toContain('nightly-check');
      expect(cli('jobs', 'delete', 'nightly-check').stdout.trim()).toBe('deleted nightly-check');
      const gone = cli('jobs', 'get', 'nightly-check');
      expect(gone.status).toBe(1);
      expect(gone.stderr.trim()).toBe('heimdall: NOT_FOUND: no scheduled job "nightly-check"');

      const submitted = cli('job', 'submit', 'system-check', '--watch');
      expect(submitted.status).toBe(0);
      expect(submitted.stdout.trim().split('\n').at(-1)).toMatch(/succeeded 100%/);
      const id = cli('job', 'submit', 'http-check', '--params', '{"url": "http://127.0.0.1:9/", "timeout": "30s"}', '--attempts', '5').stdout.trim();
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      const cancelled = cli('job', 'cancel', id);
      // The probe fails at once and is retried: the cancel may land on any attempt.
      expect(cancelled.stdout.trim()).toMatch(new RegExp(`^${id} cancelled \\d+%( \\(attempt \\d\\))?: cancelled`));
      expect(cli('job', 'watch', id).status).toBe(1); // a watch of a job that did not succeed exits 1

      const bad = cli('jobs', 'create', 'x', '--schedule', '* * *', '--kind', 'retention');
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/^heimdall: INVALID_ARGUMENT: job\.schedule: invalid cron expression "\* \* \*"/);
      const params = cli('job', 'submit', 'export', '--params', '{"source": "events", "format": "xml"}');
      expect(params.stderr).toMatch(/job\.params\.format: expected one of "jsonl", "csv", got "xml"/);
    } finally {
      await agent.stop();
      dir.cleanup();
    }
  }, 120_000); // about twenty CLI processes, each a Node start: seconds each on a loaded 2-core machine

  it('check-config names a bad job by its key path', () => {
    const dir = tempDir();
    const file = join(dir.path, 'bad.yaml');
    writeFileSync(file, 'jobs:\n  scheduled:\n    - { name: a, schedule: "* * * * *", kind: http-check, time_zone: Nowhere/City }\n    - { name: a, schedule: "*/5 * * * * *", kind: export, params: { source: events }, colour: blue }\n');
    const r = run(['check-config', '--config', file]);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('jobs.scheduled[0].time_zone: unknown time zone "Nowhere/City"');
    expect(r.stderr).toContain('jobs.scheduled[0].params.url: ');
    expect(r.stderr).toContain('jobs.scheduled[1].colour: unknown key');
    dir.cleanup();
  });

  it('check-config validates auth.tokens_file and never prints a secret, in errors or in the effective config', () => {
    const dir = tempDir();
    const SECRETS = ['shortsecret1', '31415926535', 'Bearer prod-probe-credential', '27182818284', 'hunter2-in-url', 'key-in-query-42', 'file-token-xy', 'valid-token-0000000001', 'valid-file-token-00000001'];
    const never = (r: ReturnType<typeof run>) => {
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
    const invalid = run(['check-config', '--config', bad]);
    expect(invalid.status).toBe(78);
    expect(invalid.stderr).toContain('auth.tokens[0].token: must be at least 16 characters');
    expect(invalid.stderr).toContain('storage.clickhouse.password: expected string');
    expect(invalid.stderr).toContain('jobs.scheduled[0].params.headers.X-Api-Key: expected string');
    never(invalid);
    const badUrl = join(dir.path, 'bad-url.yaml');
    writeFileSync(badUrl, 'storage:\n  clickhouse: { url: "ftp://u:hunter2-in-url@ch:8123" }\n');
    const url = run(['check-config', '--config', badUrl]);
    expect(url.status).toBe(78);
    expect(url.stderr).toContain('storage.clickhouse.url: expected a URL such as "http://clickhouse:8123", got "ftp://***@ch:8123"');
    never(url);
    // tokens_file: missing, then a bad entry (named, not quoted), then valid.
    const tokens = join(dir.path, 'tokens.yaml');
    const withFile = join(dir.path, 'with-file.yaml');
    writeFileSync(withFile, `auth:\n  enabled: true\n  tokens_file: ${tokens}\n  tokens: [{ name: inline, token: valid-token-0000000001, scopes: [admin] }]\n` + job('{ Authorization: "Bearer prod-probe-credential" }', 'https://probe.example/health?api_key=key-in-query-42&region=eu'));
    const missing = run(['check-config', '--config', withFile]);
    expect(missing.status).toBe(78);
    expect(missing.stderr).toContain(`cannot read auth.tokens_file ${tokens}`);
    writeFileSync(tokens, '- { name: from-file, token: file-token-xy, scopes: [query] }\n');
    const shortToken = run(['check-config', '--config', withFile]);
    expect(shortToken.status).toBe(78);
    expect(shortToken.stderr).toContain(`auth.tokens_file ${tokens}: [0.token] must be at least 16 characters`);
    never(shortToken);
    writeFileSync(tokens, '- { name: from-file, token: valid-file-token-00000001, scopes: [query] }\n');
    const ok = run(['check-config', '--config', withFile]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain(`# auth.tokens_file ${tokens} is valid\n# 2 API tokens`);
    expect(ok.stdout).toContain('Authorization: "***"');
    expect(ok.stdout).toContain('url: https://probe.example/health?api_key=***&region=eu');
    never(ok);
    dir.cleanup();
  });
});
