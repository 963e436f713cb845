/** The built `heimdall` client commands against a running agent: output a user reads, pastes back or pipes on, and exit statuses. */
import { create } from '@bufbuild/protobuf';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { EventService, Severity } from '../../src/gen/heimdall/v1/events_pb.js';
import { ExportTraceServiceRequestSchema, TraceService } from '../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { MAIN } from '../support/agent-process.js';
import { tempDir } from '../support/temp.js';

const execFileAsync = promisify(execFile);

describe('heimdall client commands', () => {
  let t: TestAgent;
  let c: AgentClient;
  /** Runs the CLI against the agent without blocking it (the agent runs in this process); never rejects. */
  const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const r = await execFileAsync(process.execPath, [MAIN, ...args, '--addr', t.grpcAddress], { encoding: 'utf8' });
      return { code: 0, ...r };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  beforeAll(async () => {
    t = await startTestAgent({ jobs: { system_check: { enabled: false } } });
    c = connect({ addr: t.grpcAddress });
  });
  afterAll(async () => {
    c.close();
    await t.stop();
  });

  it('exits quietly with status 0 when the reader of its output goes away (events --json | head -1)', async () => {
    // 3,000 lines of about 400 bytes: far more than a pipe holds, so the CLI is still writing when the reader leaves.
    const events = Array.from({ length: 3000 }, (_, i) => ({ eventType: 'pipe.test', source: 'pipe-src', severity: Severity.INFO, message: `event ${i} ${'m'.repeat(200)}` }));
    await c.unary(EventService.method.writeEvents, { events });
    const child = spawn(process.execPath, [MAIN, 'events', '--json', '--source', 'pipe-src', '--limit', '3000', '--addr', t.grpcAddress], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise<string>((resolve) => lines.once('line', resolve));
    lines.close();
    child.stdout.destroy();
    expect(JSON.parse(first)).toMatchObject({ eventType: 'pipe.test', source: 'pipe-src' });
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  }, 60_000); // a CLI process and 3,000 events: seconds on a loaded 2-core machine

  it('trace of an id with nothing stored exits 3 with a message on stderr, as a table or --json', async () => {
    for (const json of [[], ['--json']]) {
      const r = await cli('trace', 'no-such-correlation-id', ...json);
      expect(r).toEqual({ code: 3, stdout: '', stderr: 'heimdall: nothing stored for no-such-correlation-id\n' });
    }
    const help = await cli('trace', '--help');
    expect(help.stdout).toContain('Exit status: 0 found, 1 the call failed or the input is bad, 3 nothing stored for the id.');
  }, 60_000); // three CLI processes

  it('trace shows each span\'s kind, duration, status (with its message) and first attributes', async () => {
    const traceId = Buffer.from('5b8efff798038103d269b633813fc60c', 'hex');
    const id = (n: number) => Buffer.from([0, 0, 0, 0, 0, 0, 2, n]);
    const now = BigInt(Date.now()) * 1_000_000n;
    const str = (key: string, value: string) => ({ key, value: { value: { case: 'stringValue' as const, value } } });
    const span = (n: number, parent: number | undefined, startMs: number, durMs: number, extra: object) => ({
      traceId,
      spanId: id(n),
      parentSpanId: parent === undefined ? new Uint8Array() : id(parent),
      name: `op-${n}`,
      startTimeUnixNano: now + BigInt(startMs) * 1_000_000n,
      endTimeUnixNano: now + BigInt(startMs + durMs) * 1_000_000n,
      ...extra,
    });
    await c.unary(
      TraceService.method.export,
      create(ExportTraceServiceRequestSchema, {
        resourceSpans: [
          {
            resource: { attributes: [str('service.name', 'shop')] },
            scopeSpans: [
              {
                spans: [
                  span(1, undefined, 0, 100, { kind: 2, status: { code: 2, message: 'payment declined' }, attributes: [str('http.route', '/cart'), str('http.method', 'POST')] }),
                  span(2, 1, 10, 40, { kind: 3, status: { code: 1 }, attributes: Array.from({ length: 10 }, (_, i) => str(`db.${i}`, i === 0 ? 'q'.repeat(100) : `v${i}`)) }),
                ],
              },
            ],
          },
        ],
      }),
    );
    const r = await cli('trace', traceId.toString('hex'));
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      `trace ${traceId.toString('hex')}: 2 spans, 0 logs, 0 events`,
      '+     0 ms  shop op-1 (server, 100.0 ms, error: payment declined)',
      '                http.method=POST',
      '                http.route=/cart',
      '+    10 ms    shop op-2 (client, 40.0 ms, ok)',
      `                  db.0=${'q'.repeat(79)}…`,
      ...[1, 2, 3, 4, 5, 6, 7].map((i) => `                  db.${i}=v${i}`),
      '                  … 2 more attributes (--json shows all)',
      '',
    ]);
  }, 60_000);

  it('jobs get prints an entry of jobs.scheduled that check-config takes back', async () => {
    const created = await cli('jobs', 'create', 'nightly-check', '--schedule', '0 3 * * *', '--tz', 'Europe/Oslo', '--kind', 'system-check', '--params', '{"threshold": 30}', '--attempts', '2', '--misfire', 'run-once');
    expect(created.stderr).toBe('');
    const got = await cli('jobs', 'get', 'nightly-check');
    expect(got.code).toBe(0);
    const [comment, ...entry] = got.stdout.split('\n');
    expect(comment).toMatch(/^# from the API; next run \d{4}-\d\d-\d\dT\d\d:00:00\.000Z; last run none$/);
    expect(entry).toEqual([
      '# as an entry of jobs.scheduled in the configuration file:',
      '- name: nightly-check',
      '  schedule: 0 3 * * *',
      '  time_zone: Europe/Oslo',
      '  kind: system-check',
      '  params:',
      '    threshold: 30',
      '  active: true',
      '  timeout: 10m',
      '  retry:',
      '    attempts: 2',
      '    backoff: 1s',
      '  concurrency: forbid',
      '  max_running: 4',
      '  misfire: run-once',
      '  scope: pod',
      '',
    ]);
    const dir = tempDir();
    try {
      const file = join(dir.path, 'h.yaml');
      writeFileSync(file, `jobs:\n  scheduled:\n${got.stdout.replace(/^/gm, '    ')}\n`);
      const check = await execFileAsync(process.execPath, [MAIN, 'check-config', '--config', file], { encoding: 'utf8' });
      expect(check.stdout).toContain('    - name: nightly-check\n');
    } finally {
      dir.cleanup();
    }
    const json = await cli('jobs', 'get', 'nightly-check', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ name: 'nightly-check', concurrency: 'CONCURRENCY_FORBID', timeout: '600s' });
  }, 120_000); // four CLI processes, each a Node start: seconds each on a loaded 2-core machine
});
