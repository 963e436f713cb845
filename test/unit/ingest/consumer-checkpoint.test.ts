import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { createCheckpointStore } from '../../../src/ingest/pipeline/checkpoint.js';
import { createConsumerCheckpoint } from '../../../src/ingest/pipeline/consumer-checkpoint.js';
import { StepError } from '../../../src/ingest/pipeline/consumer-retry.js';
import { createQueueStatus } from '../../../src/ingest/pipeline/queue-status.js';
import { faultyFiles } from '../../support/faulty-files.js';
import { silentLogger, tempDir } from '../../support/temp.js';

function setup(fault: () => 'ENOSPC' | 'EIO' | undefined) {
  const dir = tempDir();
  const files = faultyFiles((c) => (c.key.includes('checkpoint') ? fault() : undefined));
  const checkpoints = createCheckpointStore({ dir: dir.path, files, logger: silentLogger() });
  const health = createHealthRegistry();
  const status = createQueueStatus(health.register('queue'));
  status.start();
  const cp = createConsumerCheckpoint({ checkpoints, status, logger: silentLogger() });
  cp.start({ id: 'q', salt: Buffer.from('salt'), committed: 4n, plan: undefined });
  return { dir, checkpoints, health, cp };
}

describe('consumer checkpoint', () => {
  it('without a checkpoint file, advances in memory only; create says why it cannot, then creates the file with the current checkpoint', async () => {
    let fault: 'ENOSPC' | undefined = 'ENOSPC';
    const { dir, checkpoints, health, cp } = setup(() => fault);
    await cp.save({ ...cp.current, committed: 9n }, 'commit a stored batch');
    expect(cp.current.committed).toBe(9n);
    expect(existsSync(join(dir.path, 'checkpoint'))).toBe(false);
    await cp.create();
    expect(health.components()[0]).toMatchObject({ state: 'degraded', reason: 'waiting for disk space: cannot create the checkpoint: ENOSPC; draining the oldest segments without it' });
    fault = undefined;
    await cp.create();
    expect(health.components()[0]?.state).toBe('ready');
    expect(checkpoints.created).toBe(true);
    const again = createCheckpointStore({ dir: dir.path, files: faultyFiles(), logger: silentLogger() });
    expect((await again.load())?.committed).toBe(9n);
    await checkpoints.close();
    dir.cleanup();
  });

  it('with the file, a save is durable, and a failed one throws what it was doing and keeps the current checkpoint', async () => {
    const disk: { fault: 'EIO' | undefined } = { fault: undefined };
    const { dir, checkpoints, cp } = setup(() => disk.fault);
    await cp.create();
    await cp.save({ ...cp.current, plan: { from: 5n, to: 7n } }, 'plan a batch');
    disk.fault = 'EIO';
    const err = await cp.save({ ...cp.current, committed: 7n, plan: undefined }, 'commit a stored batch').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepError);
    expect((err as StepError).what).toBe('write the checkpoint (commit a stored batch)');
    expect(cp.current).toMatchObject({ committed: 4n, plan: { from: 5n, to: 7n } });
    await checkpoints.close();
    const again = createCheckpointStore({ dir: dir.path, files: faultyFiles(), logger: silentLogger() });
    expect(await again.load()).toMatchObject({ committed: 4n, plan: { from: 5n, to: 7n } });
    dir.cleanup();
  });
});
