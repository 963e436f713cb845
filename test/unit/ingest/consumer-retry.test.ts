import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { attempt, createConsumerRetry, StepError } from '../../../src/ingest/pipeline/consumer-retry.js';
import { createQueueStatus } from '../../../src/ingest/pipeline/queue-status.js';

/** A logger keeping its lines (level and msg). */
function capturingLogger() {
  const lines: Array<{ level: number; msg: string; attempt?: number }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  return { logger, lines };
}

const enospc = (): Error => Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });

describe('consumer retry', () => {
  it('attempt says what failed; the cause is kept', async () => {
    const cause = enospc();
    const err = await attempt('read the queue', () => Promise.reject(cause)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepError);
    expect(err).toMatchObject({ what: 'read the queue', cause, message: 'cannot read the queue: no space left on device' });
    expect(await attempt('x', () => Promise.resolve(7))).toBe(7);
  });

  it('backs off exponentially, stalls the queue with the reason, logs the first and every tenth failure, and once that it moves again', () => {
    const { logger, lines } = capturingLogger();
    const health = createHealthRegistry();
    const status = createQueueStatus(health.register('queue', { gate: 'strict' }));
    status.start();
    const retry = createConsumerRetry({ retry: { initialMs: 100, maxMs: 3_000 }, status, logger });
    const delays = Array.from({ length: 10 }, () => retry.failed(new StepError('write the checkpoint (plan a batch)', enospc())));
    expect(delays).toEqual([100, 200, 400, 800, 1_600, 3_000, 3_000, 3_000, 3_000, 3_000]);
    expect(status.stalled).toBe('waiting for disk space: cannot write the checkpoint (plan a batch): ENOSPC; retrying in 3 s');
    expect(health.components()[0]?.state).toBe('failed');
    expect(lines.map((l) => [l.level, l.attempt, l.msg])).toEqual([
      [50, 1, 'durable queue: waiting for disk space: cannot write the checkpoint (plan a batch): ENOSPC; retrying in 100 ms'],
      [50, 10, 'durable queue: waiting for disk space: cannot write the checkpoint (plan a batch): ENOSPC; retrying in 3 s'],
    ]);
    retry.succeeded();
    retry.succeeded();
    expect(status.stalled).toBeUndefined();
    expect(health.components()[0]?.state).toBe('ready');
    expect(lines.slice(2).map((l) => [l.level, l.msg])).toEqual([[30, 'durable queue: the consumer is moving again']]);
    // Counting starts over; an error that is no StepError is "consume", by its message.
    expect(retry.failed(new Error('boom'))).toBe(100);
    expect(status.stalled).toBe('cannot consume: boom; retrying in 100 ms');
  });
});
