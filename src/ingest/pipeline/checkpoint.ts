import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../telemetry/logger.js';
import { writeAll, writeFileAtomic, type QueueFile, type QueueFiles } from './queue-files.js';
import { crc32 } from './wal.js';

/** A batch about to be inserted: recorded first so a replay re-inserts exactly the same batch. */
export interface Plan {
  from: bigint;
  to: bigint;
}

/**
 * What the consumer has done: the queue's id (in deduplication tokens) and salt (in its segments),
 * what is stored, the batch in flight.
 */
export interface Checkpoint {
  id: string;
  salt: Buffer;
  /** Every record up to this sequence number is stored. */
  committed: bigint;
  plan: Plan | undefined;
}

/** A checkpoint as loaded: the state.json of earlier versions has no salt. */
export type LoadedCheckpoint = Omit<Checkpoint, 'salt'> & { salt: Buffer | undefined };

/** Options for createCheckpointStore. */
export interface CheckpointStoreOptions {
  /** The queue directory. */
  dir: string;
  files: QueueFiles;
  logger: Logger;
}

/**
 * The consumer's checkpoint on disk. Once the file exists it is written in place, into one of two
 * fixed slots, so a commit never needs new disk space (a full disk cannot stop the queue from
 * draining), and a write torn by a crash leaves the other slot's, previous, checkpoint.
 */
export interface CheckpointStore {
  /**
   * The checkpoint on disk: the `checkpoint` file, or the `state.json` and `plan.json` of earlier
   * versions, or undefined when there is none. One that cannot be read or parsed is logged and set
   * aside (renamed `<name>.damaged`), and counts as none. Never throws.
   */
  load(): Promise<LoadedCheckpoint | undefined>;
  /** Whether the checkpoint file exists: then save writes in place and needs no disk space. */
  readonly created: boolean;
  /**
   * Writes a checkpoint durably; the first save creates the file (8 KiB, written whole under a
   * temporary name, then renamed) and removes the files of earlier versions. Throws on failure; the
   * previous checkpoint stays.
   */
  save(c: Checkpoint): Promise<void>;
  /** Closes the file. Safe to call twice. */
  close(): Promise<void>;
}

const FILE = 'checkpoint';
const LEGACY_STATE = 'state.json';
const LEGACY_PLAN = 'plan.json';
const SLOT_BYTES = 4096;
const SLOT_MAGIC = 0x314b4348; // "HCK1"
/** magic u32, generation u64, text length u32, CRC-32 of the 16 bytes before it and the text. */
const SLOT_HEADER = 20;

interface SlotText {
  id: string;
  salt: string;
  committed: string;
  plan: { from: string; to: string } | null;
}

function encodeSlot(c: Checkpoint, generation: bigint): Buffer {
  const json: SlotText = { id: c.id, salt: c.salt.toString('hex'), committed: c.committed.toString(), plan: c.plan ? { from: c.plan.from.toString(), to: c.plan.to.toString() } : null };
  const text = Buffer.from(JSON.stringify(json));
  if (SLOT_HEADER + text.length > SLOT_BYTES) throw new Error('durable queue: checkpoint too large');
  const slot = Buffer.alloc(SLOT_BYTES);
  slot.writeUInt32LE(SLOT_MAGIC, 0);
  slot.writeBigUInt64LE(generation, 4);
  slot.writeUInt32LE(text.length, 12);
  text.copy(slot, SLOT_HEADER);
  slot.writeUInt32LE(crc32(text, crc32(slot.subarray(0, 16))), 16);
  return slot;
}

function decodeSlot(slot: Buffer): { checkpoint: Checkpoint; generation: bigint } | undefined {
  if (slot.length < SLOT_HEADER || slot.readUInt32LE(0) !== SLOT_MAGIC) return undefined;
  const len = slot.readUInt32LE(12);
  if (SLOT_HEADER + len > slot.length) return undefined;
  const text = slot.subarray(SLOT_HEADER, SLOT_HEADER + len);
  if (crc32(text, crc32(slot.subarray(0, 16))) !== slot.readUInt32LE(16)) return undefined;
  const j = JSON.parse(text.toString()) as SlotText;
  const plan = j.plan ? { from: BigInt(j.plan.from), to: BigInt(j.plan.to) } : undefined;
  return { generation: slot.readBigUInt64LE(4), checkpoint: { id: j.id, salt: Buffer.from(j.salt, 'hex'), committed: BigInt(j.committed), plan } };
}

/** Where a checkpoint store reads: its directory, files and logger. */
type Where = Pick<CheckpointStoreOptions, 'dir' | 'files' | 'logger'>;

/** Reads a small file and parses it; undefined when it is missing; damaged (thrown) when it cannot be read or parsed. */
async function readIfThere<T>({ dir, files }: Where, name: string, parse: (data: Buffer) => T): Promise<T | undefined> {
  if ((await files.size(join(dir, name))) === undefined) return undefined;
  return parse(await files.readFile(join(dir, name)));
}

/** Logs a file that cannot be read and renames it `<name>.damaged`, so it is kept but no longer read. */
async function setAside({ dir, files, logger }: Where, name: string, err: unknown): Promise<void> {
  logger.error({ err, file: name }, `durable queue: cannot read ${name}; set aside as ${name}.damaged. Reading starts at the oldest queued segment: records stored before may be stored again (none is lost)`);
  await files.rename(join(dir, name), join(dir, `${name}.damaged`)).catch((e: unknown) => logger.error({ err: e, file: name }, `durable queue: cannot set ${name} aside`));
}

/** The newer of the two slots of the checkpoint file; undefined when there is no file; throws when both slots are damaged. */
async function loadFile(where: Where): Promise<{ checkpoint: Checkpoint; generation: bigint } | undefined> {
  const data = await readIfThere(where, FILE, (d) => d);
  if (!data) return undefined;
  const slots = [decodeSlot(data.subarray(0, SLOT_BYTES)), decodeSlot(data.subarray(SLOT_BYTES, 2 * SLOT_BYTES))].filter((s) => s !== undefined);
  const newest = slots.sort((a, b) => (a.generation < b.generation ? 1 : -1))[0];
  if (!newest) throw new Error('both slots of the checkpoint are damaged');
  return newest;
}

/** The state.json and plan.json of earlier versions; a damaged plan.json is set aside (state.json alone is used); throws when state.json is damaged. */
async function loadLegacy(where: Where): Promise<LoadedCheckpoint | undefined> {
  const state = await readIfThere(where, LEGACY_STATE, (d) => {
    const j = JSON.parse(d.toString()) as { id: unknown; committed: unknown };
    if (typeof j.id !== 'string' || typeof j.committed !== 'string') throw new Error(`${LEGACY_STATE} has no id or committed`);
    return { id: j.id, committed: BigInt(j.committed) };
  });
  if (!state) return undefined;
  let plan: Plan | undefined;
  try {
    plan = await readIfThere(where, LEGACY_PLAN, (d) => {
      const j = JSON.parse(d.toString()) as { from: string; to: string };
      return { from: BigInt(j.from), to: BigInt(j.to) };
    });
  } catch (err) {
    // Without the plan, its batch is inserted again under another token: stored twice at worst.
    await setAside(where, LEGACY_PLAN, err);
  }
  return { ...state, salt: undefined, plan };
}

/** Creates the checkpoint store of a queue directory. */
export function createCheckpointStore(options: CheckpointStoreOptions): CheckpointStore {
  const { dir, files, logger } = options;
  const path = join(dir, FILE);
  let file: QueueFile | undefined;
  /** Generation of the newest checkpoint on disk; 0n while the file does not exist. */
  let generation = 0n;
  /** Files of earlier versions, removed once the checkpoint file holds their content. */
  let legacy = false;

  return {
    get created() {
      return generation > 0n;
    },
    async load() {
      try {
        const found = await loadFile(options);
        if (found) {
          generation = found.generation;
          legacy = (await files.size(join(dir, LEGACY_STATE)).catch(() => undefined)) !== undefined;
          return found.checkpoint;
        }
      } catch (err) {
        await setAside(options, FILE, err);
      }
      try {
        const old = await loadLegacy(options);
        legacy = old !== undefined;
        return old;
      } catch (err) {
        await setAside(options, LEGACY_STATE, err);
        return undefined;
      }
    },
    async save(c) {
      const next = generation + 1n;
      const slot = encodeSlot(c, next);
      if (generation === 0n) {
        // Created whole (both slots allocated) under a temporary name, then renamed into place.
        const empty = Buffer.alloc(SLOT_BYTES);
        await writeFileAtomic(files, dir, FILE, Buffer.concat(next % 2n === 0n ? [slot, empty] : [empty, slot]));
      } else {
        file ??= await files.open(path, 'r+');
        await writeAll(file, [slot], Number(next % 2n) * SLOT_BYTES);
        await file.datasync();
      }
      generation = next;
      if (legacy) {
        legacy = false;
        await Promise.all([files.unlink(join(dir, LEGACY_STATE)), files.unlink(join(dir, LEGACY_PLAN))]).catch((err: unknown) => logger.warn({ err }, 'durable queue: cannot remove state.json / plan.json of an earlier version (the checkpoint replaces them)'));
      }
    },
    async close() {
      const f = file;
      file = undefined;
      await f?.close();
    },
  };
}

/**
 * The sequence number new records are numbered past, from the checkpoint loaded at start: the
 * planned batch's last record or the committed mark, whichever is higher (0 without a checkpoint).
 */
export function numberingFloor(loaded: LoadedCheckpoint | undefined): bigint {
  if (!loaded) return 0n;
  return loaded.plan && loaded.plan.to > loaded.committed ? loaded.plan.to : loaded.committed;
}

/**
 * The checkpoint the consumer starts from: the loaded one (or a new queue id), with the log's
 * `salt`; committed at least up to `oldest` (segments are removed only once their records are
 * stored, so nothing before the oldest one waits); a plan only when it is past the committed mark
 * (one at or under it, a stale plan.json of an earlier version, was stored already).
 */
export function resumeCheckpoint(loaded: LoadedCheckpoint | undefined, salt: Buffer, oldest: bigint): Checkpoint {
  const committed = loaded && loaded.committed > oldest ? loaded.committed : oldest;
  const plan = loaded?.plan && loaded.plan.to > committed ? loaded.plan : undefined;
  return { id: loaded?.id ?? randomUUID(), salt, committed, plan };
}
