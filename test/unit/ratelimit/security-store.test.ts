/** The security store on real embedded ClickHouse: the newest version of each key wins, removed blocks stay removed, state survives reopening. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActionState, SecurityMode } from '../../../src/gen/heimdall/v1/security_pb.js';
import type { ActionRecord } from '../../../src/ratelimit/security-actions.js';
import type { BlockRecord } from '../../../src/ratelimit/security-policy.js';
import { createSecurityStore } from '../../../src/ratelimit/security-store.js';
import { StorageNotReady } from '../../../src/storage/errors.js';
import { startEmbeddedStorage } from '../../support/embedded-storage.js';
import { tempDir } from '../../support/temp.js';

const block = (entity: string): BlockRecord => ({ entity, reason: 'scanner', expiresAt: 0, createdAt: 1_700_000_000_000, requestedBy: 'admin-a', approvedBy: 'admin-b' });
const action = (id: string, state: ActionState): ActionRecord => ({
  id,
  change: { kind: 'block', entity: 'user=mallory', reason: '', durationSeconds: 60 },
  state,
  reason: 'probing',
  requestedBy: 'admin-a',
  decidedBy: state === ActionState.PENDING ? '' : 'admin-b',
  createdAt: 1_700_000_000_000,
  decidedAt: 0,
  expiresAt: 1_700_003_600_000,
});
/** Versions are microsecond times: let the clock move on between two versions of one key. */
const tick = () => new Promise((r) => setTimeout(r, 2));

describe('the security store', () => {
  const dir = tempDir();
  let db: Awaited<ReturnType<typeof startEmbeddedStorage>>;
  beforeAll(async () => {
    db = await startEmbeddedStorage(dir.path);
  });
  afterAll(async () => {
    await db.stop();
    dir.cleanup();
  });

  it('loads nothing from an empty table', async () => {
    expect(await createSecurityStore({ storage: db.storage }).load()).toEqual({ mode: undefined, blocks: [], actions: [] });
  });

  it('keeps the newest version of the mode, each block and each action, and leaves removed blocks out', async () => {
    const store = createSecurityStore({ storage: db.storage });
    await store.saveMode(SecurityMode.ELEVATED);
    await store.saveBlock(block('user=mallory'));
    await store.saveBlock(block('user=eve'));
    await store.saveAction(action('a1', ActionState.PENDING));
    await tick();
    await store.saveMode(SecurityMode.LOCKDOWN);
    await store.removeBlock('user=eve');
    await store.saveAction(action('a1', ActionState.EXECUTED));
    const loaded = await store.load();
    expect(loaded.mode).toEqual({ mode: SecurityMode.LOCKDOWN, pinned: false, by: '' });
    expect(loaded.blocks).toEqual([block('user=mallory')]);
    expect(loaded.actions).toEqual([action('a1', ActionState.EXECUTED)]);
  });

  it('finds the state again after storage is reopened, and refuses writes while storage is closed', async () => {
    await db.stop();
    const store = createSecurityStore({ storage: db.storage });
    await expect(store.saveMode(SecurityMode.NORMAL)).rejects.toThrow(new StorageNotReady('the security state cannot be saved'));
    db = await startEmbeddedStorage(dir.path);
    const loaded = await createSecurityStore({ storage: db.storage }).load();
    expect(loaded).toEqual({ mode: { mode: SecurityMode.LOCKDOWN, pinned: false, by: '' }, blocks: [block('user=mallory')], actions: [action('a1', ActionState.EXECUTED)] });
  });
});
