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

/** What the consumer has done: the queue's id (in deduplication tokens), what is stored, the batch in flight. */
export interface Checkpoint {
  id: string;
  /** Every record up to this sequence number is stored. */
  committed: bigint;
  plan: Plan | undefined;
}

/** Options for createCheckpointStore. */
export interface CheckpointStoreOptions {
  /** The queue directory. */
  dir: string;
  files: QueueFiles;
  logger: Logger;
}

/**
 * The consumer's checkpoint on disk. It is written in place, into one of two fixed slots of an
 * existing file, so a commit never needs new disk space (a full disk cannot stop the queue from
 * draining), and a write torn by a crash leaves the other slot's, previous, checkpoint.
 */
export interface CheckpointStore {
  /**
   * The checkpoint on disk: the `checkpoint` file, or the `state.json` and `plan.json` of earlier
   * versions, or a fresh one (new id, nothing committed). `durable` is false until a save succeeded.
   */
  load(): Promise<{ checkpoint: Checkpoint; durable: boolean }>;
  /** Writes a checkpoint durably (creating the file the first time). Throws on failure; the previous one stays. */
  save(c: Checkpoint): Promise<void>;
  /** Closes the file. Safe to call twice. */
  close(): Promise<void>;
}

const FILE = 'checkpoint';
const SLOT_BYTES = 4096;
const SLOT_MAGIC = 0x314b4348; // "HCK1"
/** magic u32, generation u64, text length u32, CRC-32 of the 16 bytes before it and the text. */
const SLOT_HEADER = 20;

function encodeSlot(c: Checkpoint, generation: bigint): Buffer {
  const text = Buffer.from(JSON.stringify({ id: c.id, committed: c.committed.toString(), plan: c.plan ? { from: c.plan.from.toString(), to: c.plan.to.toString() } : null }));
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
  const j = JSON.parse(text.toString()) as { id: string; committed: string; plan: { from: string; to: string } | null };
  return { generation: slot.readBigUInt64LE(4), checkpoint: { id: j.id, committed: BigInt(j.committed), plan: j.plan ? { from: BigInt(j.plan.from), to: BigInt(j.plan.to) } : undefined } };
}

/** Creates the checkpoint store of a queue directory. */
export function createCheckpointStore(options: CheckpointStoreOptions): CheckpointStore {
  const { dir, files } = options;
  const path = join(dir, FILE);
  let file: QueueFile | undefined;
  /** Generation of the newest checkpoint on disk; 0n while the file does not exist. */
  let generation = 0n;
  /** Files of earlier versions, removed once the checkpoint file holds their content. */
  let legacy = false;

  const readLegacy = async (): Promise<Checkpoint | undefined> => {
    if ((await files.size(join(dir, 'state.json'))) === undefined) return undefined;
    const state = JSON.parse((await files.readFile(join(dir, 'state.json'))).toString()) as { id: string; committed: string };
    const committed = BigInt(state.committed);
    let plan: Plan | undefined;
    if ((await files.size(join(dir, 'plan.json'))) !== undefined) {
      const p = JSON.parse((await files.readFile(join(dir, 'plan.json'))).toString()) as { from: string; to: string };
      plan = { from: BigInt(p.from), to: BigInt(p.to) };
    }
    return { id: state.id, committed, plan };
  };

  return {
    async load() {
      if ((await files.size(path)) !== undefined) {
        const data = await files.readFile(path);
        const slots = [decodeSlot(data.subarray(0, SLOT_BYTES)), decodeSlot(data.subarray(SLOT_BYTES, 2 * SLOT_BYTES))].filter((s) => s !== undefined);
        const newest = slots.sort((a, b) => (a.generation < b.generation ? 1 : -1))[0];
        if (newest) {
          generation = newest.generation;
          legacy = (await files.size(join(dir, 'state.json'))) !== undefined;
          return { checkpoint: newest.checkpoint, durable: true };
        }
        options.logger.error({ path }, 'durable queue: both slots of the checkpoint are damaged; starting from the queued segments (what they hold may be stored twice)');
        await files.unlink(path);
      }
      const old = await readLegacy();
      legacy = old !== undefined;
      return { checkpoint: old ?? { id: randomUUID(), committed: 0n, plan: undefined }, durable: old !== undefined };
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
        await Promise.all([files.unlink(join(dir, 'state.json')), files.unlink(join(dir, 'plan.json'))]).catch((err: unknown) => options.logger.warn({ err }, 'durable queue: cannot remove state.json / plan.json of an earlier version (the checkpoint replaces them)'));
      }
    },
    async close() {
      const f = file;
      file = undefined;
      await f?.close();
    },
  };
}
