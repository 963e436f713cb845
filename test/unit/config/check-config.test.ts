/** `heimdall check-config` as a user runs it (the built binary): the whole report of a file with a bad value of every kind. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../support/temp.js';

const MAIN = join(import.meta.dirname, '..', '..', '..', 'dist', 'bundle', 'main.js');

const BAD = `
server:
  grpc:
    address: host:99999
storage:
  clickhouse:
    url: foo
ingest:
  memory:
    limit: 512
  batch:
    max_delay: soon
telemetry:
  tracing:
    endpoint: foo
log:
  level: loud
jobs:
  scheduled:
    - name: probe
      schedule: "* * *"
      kind: http-check
      params:
        url: foo
        timeout: x
`;

describe('heimdall check-config', () => {
  it('prints one line per bad key, each quoting its value once, and exits 78', () => {
    const dir = tempDir();
    const file = join(dir.path, 'heimdall.yaml');
    writeFileSync(file, BAD);
    const r = spawnSync(process.execPath, [MAIN, 'check-config', '--config', file], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe(
      [
        `heimdall: invalid configuration in ${file}:`,
        '  log.level: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"',
        '  server.grpc.address: expected "host:port" (for example "127.0.0.1:4317") with a port from 0 to 65535, got "host:99999"',
        '  storage.clickhouse.url: expected a URL such as "http://clickhouse:8123", got "foo"',
        '  ingest.memory.limit: expected at least 1KiB (a number without a unit counts as bytes; write a unit, as in "64MiB"), got 512',
        '  ingest.batch.max_delay: expected a duration such as "500ms", "5s", "1h" or "90d", got "soon"',
        '  jobs.scheduled[0].schedule: invalid cron expression "* * *": 3 fields; expected 5, or 6 with seconds first',
        '  jobs.scheduled[0].params.url: expected an http(s) URL, got "foo"',
        '  jobs.scheduled[0].params.timeout: expected a duration such as "500ms", "5s", "1h" or "90d", got "x"',
        '  telemetry.tracing.endpoint: expected an http(s) URL such as "http://collector:4317", got "foo"',
        '',
      ].join('\n'),
    );
    expect(r.stdout).toBe('');
    expect(r.status).toBe(78);
    dir.cleanup();
  });
});
