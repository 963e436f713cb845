import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { RetryableError } from '../../../src/ingest/pipeline/errors.js';
import { createQueueAppends } from '../../../src/ingest/pipeline/queue-appends.js';
import { createQueueStatus } from '../../../src/ingest/pipeline/queue-status.js';
import { createSegmentLog } from '../../../src/ingest/pipeline/segment-log.js';
import { faultyFiles } from '../../support/faulty-files.js';
import { silentLogger, tempDir } from '../../support/temp.js';

const rows = (text: string) => [{ table: 'heimdall_logs', rows: 1, data: Buffer.from(`${text}\n`) }];

async function setup(maxBytes: number, fault: () => 'ENOSPC' | undefined = () => undefined) {
  const dir = tempDir();
  const log = createSegmentLog({ dir: dir.path, files: faultyFiles((c) => (c.key === 'writev:segment' ? fault() : undefined)), segmentBytes: 1 << 20, logger: silentLogger(), onDurable: () => undefined });
  await log.recover(0n, undefined);
  const metrics = new Registry();
  const refused = new Counter({ name: 'refused', help: 'refused', labelNames: ['reason'] as const, registers: [metrics] });
  const health = createHealthRegistry();
  const status = createQueueStatus(health.register('queue', { gate: 'strict' }));
  status.start();
  const appends = createQueueAppends({ log, maxBytes, refused, status });
  const counts = async () => Object.fromEntries((await refused.get()).values.map((v) => [String(v.labels.reason), v.value]));
  return { dir, log, health, status, appends, counts };
}

describe('queue appends', () => {
  it('takes appends within max size; past it refuses them (retryable, counted full), and nothing of them is kept', async () => {
    const { dir, log, appends, counts } = await setup(200);
    await appends.append(rows('a'));
    const before = log.bytes;
    const err = await appends.append(rows('b'.repeat(300))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as Error).message).toBe(`durable queue is full (${before} of 200 bytes)`);
    expect(log.bytes).toBe(before);
    expect(log.durableSeq).toBe(1n);
    expect(await counts()).toEqual({ full: 1 });
    await log.close();
    dir.cleanup();
  });

  it('a write that fails is refused (counted write_failed) and stalls the queue with the reason; closed, every append is refused', async () => {
    let fault: 'ENOSPC' | undefined = 'ENOSPC';
    const { dir, log, status, appends, counts } = await setup(1 << 20, () => fault);
    await expect(appends.append(rows('a'))).rejects.toThrow(RetryableError);
    expect(status.stalled).toBe('waiting for disk space: appends fail: ENOSPC');
    expect(await counts()).toEqual({ write_failed: 1 });
    fault = undefined;
    await appends.append(rows('b'));
    expect(appends.close()).toBe(true);
    expect(appends.close()).toBe(false);
    await expect(appends.append(rows('c'))).rejects.toThrow('the agent is shutting down');
    await log.close();
    dir.cleanup();
  });
});
