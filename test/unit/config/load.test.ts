import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configErrorOf } from '../../support/config-error.js';
import { hashConfig, loadConfig, maskSecrets, validateConfig } from '../../../src/config/load.js';
import { configWarnings } from '../../../src/config/warnings.js';

function writeYaml(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'heimdall-cfg-')), 'heimdall.yaml');
  writeFileSync(path, text);
  return path;
}

const errorOf = configErrorOf;

describe('config', () => {
  it('has a default for every setting, with safe binds', () => {
    const { config, source } = loadConfig(undefined, {});
    expect(source).toBeUndefined();
    expect(config.server.grpc.address).toBe('127.0.0.1:4317');
    expect(config.server.otlp_http.address).toBe('127.0.0.1:4318');
    expect(config.server.admin.address).toBe('127.0.0.1:9464');
    expect(config.server.grpc.max_recv_msg_size).toBe(4 * 1024 * 1024);
    expect(config.storage.embedded.path).toBe('./data');
    expect(config.storage.retention.traces).toBe(90 * 86_400_000);
    expect(config.shutdown.drain).toBe(2_000);
  });

  it('names the key path and what was expected', () => {
    expect(errorOf(() => validateConfig({ storage: { clickhouse: { url: 'foo' } } }))).toContain(
      'storage.clickhouse.url: expected a URL such as "http://clickhouse:8123", got "foo"',
    );
    expect(errorOf(() => validateConfig({ log: { level: 'loud' } }))).toMatch(/log\.level: expected one of "trace".*got "loud"/);
    expect(errorOf(() => validateConfig({ shutdown: { drain: '5 parsecs' } }))).toContain('shutdown.drain: expected a duration');
    expect(errorOf(() => validateConfig({ server: { grpc: { address: 'nowhere' } } }))).toContain('server.grpc.address: expected "host:port"');
    expect(errorOf(() => validateConfig({ storage: { migrate_on_start: 'yes' } }))).toContain('storage.migrate_on_start: expected one of "true", "false", got "yes"');
    expect(errorOf(() => validateConfig({ storage: { health_check_interval: '30d' } }))).toContain('storage.health_check_interval: expected a duration from 100ms to 2147483647ms, got "30d"');
    expect(errorOf(() => validateConfig({ ingest: { retry: { initial_interval: 0 } } }))).toContain('ingest.retry.initial_interval: expected a duration from 1ms');
    expect(errorOf(() => validateConfig({ shutdown: { drain: '40s' } }))).toContain('shutdown.drain: must be shorter than shutdown.timeout (30000 ms)');
    expect(errorOf(() => validateConfig({ storage: { mode: 'server' } }))).toContain('storage.clickhouse.url: is required when storage.mode is "server"');
    expect(errorOf(() => validateConfig({ storage: { clickhouse: { cluster: 'c' } } }))).toContain('storage.clickhouse.cluster: needs a ClickHouse server');
    expect(errorOf(() => validateConfig({ telemetry: { tracing: { endpoint: 'foo:bar' } } }))).toContain('telemetry.tracing.endpoint: expected an http(s) URL');
    expect(errorOf(() => validateConfig({ ingest: { redaction: { keys: ['(unclosed'] } } }))).toContain('ingest.redaction.keys[0]: expected a valid regular expression');
  });

  it('warns when a listener takes requests whose decoded form cannot fit the memory limit (they would be refused for good)', () => {
    expect(configWarnings(validateConfig({}))).toEqual([]);
    expect(configWarnings(validateConfig({ ingest: { memory: { limit: '256MiB', spike: '64MiB' } } }))).toEqual([]);
    expect(configWarnings(validateConfig({ server: { otlp_http: { max_body_size: '16MiB' } }, ingest: { memory: { limit: '256MiB', spike: '64MiB' } } }))).toEqual([
      'server.otlp_http.max_body_size (16MiB) takes requests that need up to 432MiB while decoded, more than ingest.memory.limit (256MiB): requests over 9.4MiB may be refused for good (413 / INVALID_ARGUMENT); lower it to 9.4MiB or raise the memory limit',
    ]);
    expect(configWarnings(validateConfig({ server: { otlp_http: { max_body_size: '8MiB' } }, ingest: { memory: { limit: '256MiB', spike: '64MiB' } } }))).toEqual([]);
  });

  it('warns when a metric family cap of label sets, every value at the length limit, cannot fit the family size budget; the defaults fit', () => {
    expect(configWarnings(validateConfig({}))).toEqual([]);
    // 2000 RED label sets at 128 bytes a value: 17 lines of 133 + 4 x 128 bytes each, 20.9MiB in all.
    expect(configWarnings(validateConfig({ telemetry: { metrics: { max_family_size: '8MiB' } } }))).toEqual([
      'ingest.red_metrics.max_series (2000) label sets of heimdall_spans_total take up to 20.9MiB of /metrics at telemetry.metrics.max_label_length (128), more than telemetry.metrics.max_family_size (8MiB): past about 765 long-valued label sets, new ones count as __overflow__ before the series cap; raise max_family_size to 20.9MiB or lower the cap',
    ]);
    expect(configWarnings(validateConfig({ ingest: { red_metrics: { max_series: 700 } }, telemetry: { metrics: { max_family_size: '8MiB' } } }))).toEqual([]);
    expect(configWarnings(validateConfig({ telemetry: { metrics: { max_label_length: 512 } } })).map((w) => w.slice(0, w.indexOf(' label sets')))).toEqual(['ingest.red_metrics.max_series (2000)']);
  });

  it('refuses unknown keys at any depth', () => {
    const message = errorOf(() => validateConfig({ bogus: 1, server: { grpc: { adress: 'x:1' } } }));
    expect(message).toContain('bogus: unknown key');
    expect(message).toContain('server.grpc.adress: unknown key');
  });

  it('substitutes ${env:NAME} and ${NAME:-default}; numeric keys read their text', () => {
    const path = writeYaml(
      ['log:', '  level: ${env:LEVEL}', 'server:', '  grpc:', '    address: "127.0.0.1:${GRPC_PORT:-5317}"', '    max_recv_msg_size: ${SIZE}', 'storage:', '  clickhouse:', '    password: "$${literal}"'].join('\n'),
    );
    const { config, source } = loadConfig(path, { LEVEL: 'debug', SIZE: '1024' });
    expect(source).toBe(path);
    expect(config.log.level).toBe('debug');
    expect(config.server.grpc.address).toBe('127.0.0.1:5317');
    expect(config.server.grpc.max_recv_msg_size).toBe(1024);
    expect(config.storage.clickhouse.password).toBe('${literal}');
  });

  it('reads HEIMDALL_CONFIG when no path is given', () => {
    const path = writeYaml('log:\n  level: warn\n');
    expect(loadConfig(undefined, { HEIMDALL_CONFIG: path }).config.log.level).toBe('warn');
  });

  it('reports unset variables, bad YAML and missing files precisely', () => {
    expect(errorOf(() => loadConfig(writeYaml('log:\n  level: ${NOPE}\n'), {}))).toContain('log.level: environment variable NOPE is not set');
    expect(errorOf(() => loadConfig(writeYaml('log: [\n'), {}))).toContain('invalid YAML');
    expect(errorOf(() => loadConfig(writeYaml('log: {level: info}\nlog: {level: warn}\n'), {}))).toContain('invalid YAML');
    expect(errorOf(() => loadConfig('/nonexistent/heimdall.yaml', {}))).toContain('cannot read configuration file /nonexistent/heimdall.yaml');
  });

  it('keeps substituted text as text: passwords that look like numbers, quotes, hashes and empty values', () => {
    const path = writeYaml(['storage:', '  clickhouse:', '    url: http://ch:8123', '    password: ${PW}', '    username: ${USER_NAME}', 'ingest:', '  batch:', '    max_rows: ${ROWS}', '  redaction:', '    enabled: ${REDACT}'].join('\n'));
    for (const pw of ['12345', 'true', 'abc #def', '"x"', ' spaced ', '[oops', '*x', '']) {
      const { config } = loadConfig(path, { PW: pw, USER_NAME: 'u', ROWS: '500', REDACT: 'false' });
      expect(config.storage.clickhouse.password).toBe(pw);
      expect(config.ingest.batch.max_rows).toBe(500);
      expect(config.ingest.redaction.enabled).toBe(false);
    }
    expect(errorOf(() => loadConfig(path, { PW: 'x', USER_NAME: 'u', ROWS: 'many', REDACT: 'false' }))).toContain('ingest.batch.max_rows: expected a whole number');
  });

  it('hashes by content and masks secrets', () => {
    const a = validateConfig({ log: { level: 'info' } });
    const b = validateConfig({});
    expect(hashConfig(a)).toBe(hashConfig(b));
    expect(hashConfig(validateConfig({ log: { level: 'warn' } }))).not.toBe(hashConfig(b));
    const masked = maskSecrets(validateConfig({ storage: { clickhouse: { password: 's3cret' } } })) as typeof a;
    expect(masked.storage.clickhouse.password).toBe('***');
    expect(JSON.stringify(masked)).not.toContain('s3cret');
    const withUrlPassword = maskSecrets(validateConfig({ storage: { clickhouse: { url: 'http://u:secretpw@ch:8123' } } })) as typeof a;
    expect(withUrlPassword.storage.clickhouse.url).toBe('http://***@ch:8123');
    // The hash (shown on /status) does not depend on secrets.
    expect(hashConfig(validateConfig({ storage: { clickhouse: { password: 'a' } } }))).toBe(hashConfig(validateConfig({ storage: { clickhouse: { password: 'b' } } })));
    // An http-check body (a login form, say) is masked like its headers.
    const probe = { name: 'login', schedule: '* * * * *', kind: 'http-check', params: { url: 'http://app/login', method: 'POST', headers: { authorization: 'Bearer HEADERSECRET1' }, body: '{"password":"BODYSECRET1"}' } };
    const printed = JSON.stringify(maskSecrets(validateConfig({ jobs: { scheduled: [probe] } })));
    expect(printed).not.toMatch(/HEADERSECRET1|BODYSECRET1/);
    // A webhook's URL path (a chat webhook's token) and its headers.
    const webhook = { url: 'https://hooks.example.com/services/T0/B0/PATHSECRET3', headers: { authorization: 'Bearer HEADERSECRET3' } };
    const automation = { honeypots: [{ name: 'trap', entries: ['path=/.env'], webhook }], rules: [{ name: 'burst', on: 'refusals', threshold: 10, then: 'elevated', webhook }] };
    const hooks = maskSecrets(validateConfig({ ratelimit: { security: { automation } } })) as typeof a;
    expect(JSON.stringify(hooks)).not.toMatch(/PATHSECRET3|HEADERSECRET3/);
    expect(hooks.ratelimit.security.automation.rules[0]?.webhook?.url).toBe('https://hooks.example.com/***');
  });

  it('never quotes a mapping or a list given where a scalar or another shape was expected (it may hold secrets)', () => {
    const probe = { name: 'p', schedule: '* * * * *', kind: 'http-check', params: { url: 'http://x/', headers: { authorization: 'Bearer HEADERSECRET2' } } };
    expect(errorOf(() => validateConfig({ jobs: { scheduled: { p: probe } } }))).toBe('invalid configuration:\n  jobs.scheduled: expected array, got a mapping');
    expect(errorOf(() => validateConfig({ ratelimit: { redis: [{ url: 'redis://r:6379', password: 'REDISSECRET' }] } }))).toBe('invalid configuration:\n  ratelimit.redis: expected object, got a list of 1');
  });
});
