import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../telemetry/logger.js';
import type { TableRows } from './batcher.js';
import { RetryableError } from './errors.js';
import { encodeRecord, fsyncDir, listSegments, parseRecords, readSegment, segmentName, truncateTo, writeFileAtomic, type WalRecord } from './wal.js';
import type { Writer } from './writer.js';

/** Options for createDurableQueue. */
export interface DurableQueueOptions {
  path: string;
  /** Bytes of segments kept at most; appends past it are refused (retryable). */
  maxBytes: number;
  segmentBytes: number;
  writer: Writer;
  /** Rows per insert. */
  maxRows: number;
  /** Longest a record waits before a smaller batch is written. */
  maxDelayMs: number;
  logger: Logger;
  metrics: Registry;
}

/** An on-disk queue (write-ahead log) between acknowledgement and ClickHouse. */
export interface DurableQueue {
  /** Recovers the log (cutting a torn tail), then starts writing queued data to storage. */
  start(): Promise<void>;
  /** Appends rows; resolves once they are fsynced. Throws RetryableError when the queue is full. */
  append(parts: readonly TableRows[]): Promise<void>;
  /** Records appended and not yet stored. */
  readonly depth: number;
  /** Stops appends, lets the batch in progress finish (or stay queued), closes files. Safe to call twice. */
  shutdown(): Promise<void>;
}

interface State {
  /** Identifies this queue in deduplication tokens. */
  id: string;
  /** Every record up to this sequence number is stored. */
  committed: string;
}

/** A batch about to be inserted: recorded first so a replay re-inserts exactly the same batches. */
interface Plan {
  from: string;
  to: string;
}

/**
 * Creates the durable queue. Exactly-once: before inserting records [from..to] the queue records
 * that plan; every insert carries a token derived from (queue id, from, to, table); after a crash
 * the same plan is replayed first, and ClickHouse drops the inserts that had already landed.
 */
export function createDurableQueue(options: DurableQueueOptions): DurableQueue {
  const dir = options.path;
  const logger = options.logger.child({ component: 'queue' });
  let state: State = { id: randomUUID(), committed: '0' };
  let segments: Array<{ path: string; first: bigint; size: number }> = [];
  let handle: FileHandle | undefined;
  let nextSeq = 1n;
  let durableSeq = 0n;
  let totalBytes = 0;
  let pending: Array<{ buf: Buffer; resolve: () => void; reject: (e: Error) => void }> = [];
  let flushing: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let stopped = false;
  let consumer: Promise<void> | undefined;
  // Read position of the consumer: segment index and byte offset within it.
  let readSeg = 0;
  let readOffset = 0;
  let plan: Plan | undefined;

  new Gauge({
    name: 'heimdall_exporter_queue_size',
    help: 'Requests in the durable queue not yet stored.',
    registers: [options.metrics],
    collect() {
      this.set(Number(durableSeq - BigInt(state.committed)));
    },
  });
  new Gauge({ name: 'heimdall_exporter_queue_capacity_bytes', help: 'Bytes the durable queue may hold.', registers: [options.metrics] }).set(options.maxBytes);
  new Gauge({
    name: 'heimdall_exporter_queue_bytes',
    help: 'Bytes the durable queue holds on disk.',
    registers: [options.metrics],
    collect() {
      this.set(totalBytes);
    },
  });

  const saveState = (): void => writeFileAtomic(dir, 'state.json', JSON.stringify(state));

  const openSegment = async (first: bigint): Promise<void> => {
    await handle?.close();
    const path = join(dir, segmentName(first));
    handle = await open(path, 'a');
    fsyncDir(dir);
    segments.push({ path, first, size: 0 });
  };

  /** Writes every pending append with one write and one fdatasync (group commit). */
  const flush = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        const last = segments[segments.length - 1];
        if (!handle || !last || last.size >= options.segmentBytes) await openSegment(nextSeq);
        const bufs = batch.map((p) => encodeRecord(nextSeq++, p.buf));
        const bytes = bufs.reduce((n, b) => n + b.length, 0);
        await handle?.writev(bufs);
        await handle?.datasync();
        const seg = segments[segments.length - 1];
        if (seg) seg.size += bytes;
        durableSeq = nextSeq - 1n;
        for (const p of batch) p.resolve();
        wake?.();
      } catch (err) {
        totalBytes -= batch.reduce((n, p) => n + p.buf.length, 0);
        for (const p of batch) p.reject(new RetryableError(`durable queue write failed: ${(err as Error).message}`, 1_000));
      }
    }
  };

  /** Reads queued records after the read position, up to maxRows rows (or exactly to `upTo`). */
  const readBatch = async (upTo?: bigint): Promise<WalRecord[]> => {
    const out: WalRecord[] = [];
    let rows = 0;
    while (readSeg < segments.length) {
      const seg = segments[readSeg];
      if (!seg) break;
      // seg.size only grows after fdatasync: everything below it is durable and whole.
      const size = seg.size;
      if (readOffset >= size) {
        if (readSeg === segments.length - 1) break;
        readSeg += 1;
        readOffset = 0;
        continue;
      }
      const fh = await open(seg.path, 'r');
      const length = size - readOffset;
      const buf = Buffer.allocUnsafe(length);
      await fh.read(buf, 0, length, readOffset);
      await fh.close();
      const { records } = parseRecords(buf, readOffset);
      if (records.length === 0) break;
      for (const r of records) {
        if (r.seq <= BigInt(state.committed)) {
          readOffset = r.end;
          continue;
        }
        if (upTo !== undefined ? r.seq > upTo : rows >= options.maxRows) return out;
        out.push(r);
        rows += (JSON.parse(r.payload.toString()) as TableRows[]).reduce((n, p) => n + p.rows, 0);
        readOffset = r.end;
      }
    }
    return out;
  };

  /** Inserts one planned batch, table by table, each with its deterministic token. */
  const store = async (records: WalRecord[], p: Plan): Promise<boolean> => {
    const byTable = new Map<string, { text: string[]; rows: number }>();
    for (const r of records) {
      for (const part of JSON.parse(r.payload.toString()) as TableRows[]) {
        const t = byTable.get(part.table) ?? { text: [], rows: 0 };
        t.text.push(part.text);
        t.rows += part.rows;
        byTable.set(part.table, t);
      }
    }
    for (const [table, t] of byTable) {
      const result = await options.writer.write(table, Buffer.from(t.text.join('')), t.rows, `${state.id}:${p.from}-${p.to}:${table}`);
      if (result.status !== 'ok') return false;
    }
    return true;
  };

  const releaseSegments = (): void => {
    const committed = BigInt(state.committed);
    while (segments.length > 1) {
      const next = segments[1];
      const first = segments[0];
      if (!next || !first || next.first > committed + 1n) break;
      rmSync(first.path, { force: true });
      totalBytes -= first.size;
      segments.shift();
      readSeg = Math.max(0, readSeg - 1);
    }
    fsyncDir(dir);
  };

  const consume = async (): Promise<void> => {
    while (!stopped) {
      const position = { readSeg, readOffset };
      let records = plan ? await readBatch(BigInt(plan.to)) : await readBatch();
      if (records.length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, options.maxDelayMs).unref();
        });
        wake = undefined;
        continue;
      }
      if (!plan) {
        // Let a small batch grow for up to maxDelay, then take what there is.
        const rows = records.length;
        if (rows < options.maxRows && !stopped) {
          await new Promise((resolve) => setTimeout(resolve, options.maxDelayMs).unref());
          // Read again from the same position, now possibly with more records.
          ({ readSeg, readOffset } = position);
          records = await readBatch();
        }
        const first = records[0];
        const last = records[records.length - 1];
        if (!first || !last) continue;
        plan = { from: first.seq.toString(), to: last.seq.toString() };
        writeFileAtomic(dir, 'plan.json', JSON.stringify(plan));
      }
      const ok = await store(records, plan);
      if (!ok) {
        // Only when shutting down (the writer retries forever otherwise): the plan stays for the next start.
        break;
      }
      state = { ...state, committed: plan.to };
      saveState();
      rmSync(join(dir, 'plan.json'), { force: true });
      plan = undefined;
      releaseSegments();
    }
  };

  return {
    get depth() {
      return Number(durableSeq - BigInt(state.committed));
    },
    async start() {
      mkdirSync(dir, { recursive: true });
      if (existsSync(join(dir, 'state.json'))) state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as State;
      else saveState();
      if (existsSync(join(dir, 'plan.json'))) plan = JSON.parse(readFileSync(join(dir, 'plan.json'), 'utf8')) as Plan;
      segments = listSegments(dir);
      let last = BigInt(state.committed);
      for (const seg of segments) {
        const { records, validEnd, size } = readSegment(seg.path);
        if (validEnd < size) {
          logger.warn({ segment: seg.path, validEnd, size }, 'durable queue: cutting a torn record at the end of a segment');
          truncateTo(seg.path, validEnd);
          seg.size = validEnd;
        }
        const tail = records[records.length - 1];
        if (tail && tail.seq > last) last = tail.seq;
      }
      totalBytes = segments.reduce((n, s) => n + s.size, 0);
      nextSeq = last + 1n;
      durableSeq = last;
      if (plan && BigInt(plan.from) !== BigInt(state.committed) + 1n) plan = undefined;
      const backlog = Number(durableSeq - BigInt(state.committed));
      logger.info({ path: dir, backlog, bytes: totalBytes, replayingPlan: plan ?? null }, 'durable queue opened');
      releaseSegments();
      consumer = consume().catch((err: unknown) => logger.error({ err }, 'durable queue consumer stopped'));
    },
    async append(parts) {
      if (stopped) throw new RetryableError('the agent is shutting down', 1_000);
      const buf = Buffer.from(JSON.stringify(parts));
      if (totalBytes + buf.length > options.maxBytes) throw new RetryableError(`durable queue is full (${totalBytes} of ${options.maxBytes} bytes)`, 5_000);
      totalBytes += buf.length + 16;
      await new Promise<void>((resolve, reject) => {
        pending.push({ buf, resolve, reject });
        flushing ??= Promise.resolve()
          .then(flush)
          .finally(() => (flushing = undefined));
      });
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      await flushing;
      options.writer.shutdown();
      wake?.();
      await consumer;
      await handle?.close();
      handle = undefined;
      logger.info({ backlog: Number(durableSeq - BigInt(state.committed)) }, 'durable queue closed');
    },
  };
}
