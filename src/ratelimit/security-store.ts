import type { SecurityMode } from '../gen/heimdall/v1/security_pb.js';
import type { Storage } from '../storage/storage.js';
import { SECURITY_STATE } from '../storage/tables.js';
import type { ActionRecord } from './security-actions.js';
import type { BlockRecord } from './security-policy.js';

/** The security state as stored: the mode (when one was ever set: whether pinned, who set it), the blocks and the actions, in storage's order. */
export interface StoredSecurity {
  mode: { mode: SecurityMode; pinned: boolean; by: string } | undefined;
  blocks: BlockRecord[];
  actions: ActionRecord[];
}

/** Options for createSecurityStore. */
export interface SecurityStoreOptions {
  storage: Pick<Storage, 'requireReady' | 'transport'>;
}

/**
 * The security state in the `heimdall_security_state` table: one row per mode, block or action
 * version, the newest version of a key winning. Writes throw the storage's not-ready error (answered
 * UNAVAILABLE) while storage cannot take them, and storage errors as they come.
 */
export interface SecurityStore {
  saveMode(mode: SecurityMode, pinned?: boolean, by?: string): Promise<void>;
  saveBlock(block: BlockRecord): Promise<void>;
  /** Removes the block of `entity` (a tombstone: the next load does not return it). */
  removeBlock(entity: string): Promise<void>;
  saveAction(action: ActionRecord): Promise<void>;
  /** Reads the newest version of every key that is not removed. */
  load(): Promise<StoredSecurity>;
}

/** Creates the store over `storage`. */
export function createSecurityStore(options: SecurityStoreOptions): SecurityStore {
  const { storage } = options;
  const put = async (kind: 'mode' | 'block' | 'action', key: string, data: unknown, deleted = false): Promise<void> => {
    storage.requireReady('the security state cannot be saved');
    await storage.transport.insert(SECURITY_STATE.name, [{ Kind: kind, Key: key, Version: Date.now() * 1000 + Math.floor(Math.random() * 1000), Deleted: deleted ? 1 : 0, Data: JSON.stringify(data) }]);
  };
  return {
    saveMode: (mode, pinned = false, by = '') => put('mode', 'mode', { mode, pinned, by }),
    saveBlock: (block) => put('block', block.entity, block),
    removeBlock: (entity) => put('block', entity, {}, true),
    saveAction: (action) => put('action', action.id, action),
    async load() {
      const rows = await storage.transport.query<{ Kind: string; Key: string; Data: string }>(`SELECT Kind, Key, Data FROM ${SECURITY_STATE.name} FINAL WHERE Deleted = 0`);
      const stored: StoredSecurity = { mode: undefined, blocks: [], actions: [] };
      for (const r of rows) {
        const data = JSON.parse(r.Data) as Record<string, unknown>;
        if (r.Kind === 'mode') stored.mode = { mode: Number(data.mode), pinned: data.pinned === true, by: typeof data.by === 'string' ? data.by : '' };
        else if (r.Kind === 'block') stored.blocks.push(data as unknown as BlockRecord);
        else if (r.Kind === 'action') stored.actions.push(data as unknown as ActionRecord);
      }
      return stored;
    },
  };
}
