import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, hashConfig, loadConfig, maskSecrets, validateConfig } from '../../../src/config/load.js';

function writeYaml(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'heimdall-cfg-')), 'heimdall.yaml');
  writeFileSync(path, text);
  return path;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('has a default for every setting, with safe binds', () => {
    const { config, source } = loadConfig(undefined, {});
    expect(source).toBeUndefined();
    expect(config.server.grpc.address).toBe('127.0.0.1:4317');
    expect(config.server.otlp_http.address).toBe('127.0.0.1:4318');
    expect(config.server.admin.address).toBe('0.0.0.0:9464');
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
    expect(errorOf(() => validateConfig({ storage: { migrate_on_start: 'yes' } }))).toContain('storage.migrate_on_start: expected boolean, got "yes"');
  });

  it('refuses unknown keys at any depth', () => {
    const message = errorOf(() => validateConfig({ bogus: 1, server: { grpc: { adress: 'x:1' } } }));
    expect(message).toContain('bogus: unknown key');
    expect(message).toContain('server.grpc.adress: unknown key');
  });

  it('substitutes ${env:NAME} and ${NAME:-default}, typing whole-value references', () => {
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

  it('hashes by content and masks secrets', () => {
    const a = validateConfig({ log: { level: 'info' } });
    const b = validateConfig({});
    expect(hashConfig(a)).toBe(hashConfig(b));
    expect(hashConfig(validateConfig({ log: { level: 'warn' } }))).not.toBe(hashConfig(b));
    const masked = maskSecrets(validateConfig({ storage: { clickhouse: { password: 's3cret' } } })) as typeof a;
    expect(masked.storage.clickhouse.password).toBe('***');
    expect(JSON.stringify(masked)).not.toContain('s3cret');
  });
});
