/** The watched limits file over a real temporary file: reload on change, the last good limits kept on a bad file, each good load handed on, health and metrics. */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { createHealthRegistry, type HealthRegistry, type HealthReporter } from '../../../src/health/registry.js';
import { createLimitsFile, type LimitsFile } from '../../../src/ratelimit/limits-file.js';
import { silentLogger, tempDir } from '../../support/temp.js';
import { until } from '../../support/wait.js';

const domainFile = (domain: string, backend = 'local') => `domain: ${domain}\ndescriptors:\n  - key: ip\n    rate_limit: { unit: second, requests_per_unit: 5, backend: ${backend} }\n`;

describe('limits file', () => {
  let dir: ReturnType<typeof tempDir>;
  let file: LimitsFile | undefined;
  let metrics: Registry;
  let health: HealthRegistry;
  const metric = async (name: string) => (await metrics.getSingleMetric(name)?.get())?.values[0]?.value;
  /** Writes a file as an editor does: a new file renamed over the old one. */
  const replace = (path: string, text: string) => {
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  };
  let loads: string[][];
  let reporter: HealthReporter;
  const open = (config: object) => {
    metrics = new Registry();
    health = createHealthRegistry();
    loads = [];
    reporter = health.register('ratelimit', { gate: 'none' });
    file = createLimitsFile({ config: validateConfig({ ratelimit: config }).ratelimit, logger: silentLogger(), metrics, reporter, onLoad: (limits) => loads.push([...limits.keys()]) });
    return file;
  };
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    file?.close();
    dir.cleanup();
  });

  it('loads at start, reloads after a change, and keeps the last good limits (degraded, counted) while the file is invalid', async () => {
    const path = join(dir.path, 'limits.yaml');
    writeFileSync(path, domainFile('first'));
    const limits = open({ config_path: path });
    expect(limits.current.size).toBe(0);
    limits.start();
    expect([...limits.current.keys()]).toEqual(['first']);
    expect(health.component('ratelimit')?.state).toBe('ready');
    expect(await metric('heimdall_ratelimit_domains')).toBe(1);

    replace(path, domainFile('second'));
    await until(() => limits.current.has('second'), 15_000, 'the changed file loaded');
    expect(limits.current.has('first')).toBe(false);

    replace(path, 'domain: second\ndescriptors: []\n');
    await until(() => health.component('ratelimit')?.state === 'degraded', 15_000, 'the invalid file refused');
    expect(health.component('ratelimit')?.reason).toMatch(/previous one kept: .*limits\.yaml:\d+: descriptors: needs at least one descriptor/);
    expect([...limits.current.keys()]).toEqual(['second']);
    expect(await metric('heimdall_ratelimit_config_errors_total')).toBe(1);

    replace(path, domainFile('third'));
    await until(() => limits.current.has('third'), 15_000, 'the fixed file loaded');
    expect(health.component('ratelimit')?.state).toBe('ready');
    // Each good load is handed on (the rate-limit worker gets it); the refused one is not.
    expect(loads).toEqual([['first'], ['second'], ['third']]);
  });

  it("reports the last load's state again on report(), after another report on its component", () => {
    const path = join(dir.path, 'limits.yaml');
    writeFileSync(path, 'domain: bad\ndescriptors: []\n');
    const limits = open({ config_path: path });
    limits.start();
    const reason = health.component('ratelimit')?.reason;
    expect(reason).toMatch(/needs at least one descriptor/);
    expect(loads).toEqual([]);
    reporter.set('degraded', 'the rate-limit worker exited');
    limits.report();
    expect(health.component('ratelimit')).toMatchObject({ state: 'degraded', reason });
  });

  it('refuses limits with backend: redis without ratelimit.redis, and accepts them with it', () => {
    const path = join(dir.path, 'limits.yaml');
    writeFileSync(path, domainFile('shared', 'redis'));
    const without = open({ config_path: path });
    without.start();
    expect(without.current.size).toBe(0);
    expect(health.component('ratelimit')?.reason).toMatch(/backend redis needs ratelimit\.redis/);
    without.close();
    const withRedis = open({ config_path: path, redis: { url: 'redis://127.0.0.1:1' } });
    withRedis.start();
    expect([...withRedis.current.keys()]).toEqual(['shared']);
    expect(health.component('ratelimit')?.state).toBe('ready');
  });

  it('refuses a honeypot: naming no configured honeypot (file:line), and loads it once the honeypot is configured', () => {
    const path = join(dir.path, 'limits.yaml');
    writeFileSync(path, 'domain: edge\ndescriptors:\n  - key: path\n    value: /.env\n    honeypot: dotenv\n');
    const without = open({ config_path: path });
    without.start();
    expect(without.current.size).toBe(0);
    expect(health.component('ratelimit')?.reason).toContain(`${path}:5: descriptors.0.honeypot: unknown honeypot "dotenv"`);
    without.close();
    const configured = open({ config_path: path, security: { automation: { honeypots: [{ name: 'dotenv' }] } } });
    configured.start();
    expect(configured.current.get('edge')?.children.get('path_/.env')?.honeypot).toBe('dotenv');
  });

  it('without config_path: no limits, ready; close is safe twice', () => {
    const limits = open({});
    limits.start();
    expect(limits.current.size).toBe(0);
    expect(health.component('ratelimit')?.state).toBe('ready');
    limits.close();
    limits.close();
  });
});
