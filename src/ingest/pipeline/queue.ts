import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../telemetry/logger.js';
import type { TableRows } from './batcher.js';
import { RetryableError } from './errors.js';
import { insertOptionsFor } from './formats.js';
import { countRows, decodeParts, encodeParts, encodeRecord, fsyncDir, HEADER_BYTES, listSegments, parseRecords, readSegment, segmentName, truncateTo, writeFileAtomic, type RecordPart, type WalRecord } from './wal.js';
import type { Writer } from './writer.js';

/** Options for createDurableQueue. */
export interface DurableQueueOptions {
  /** Directory of the log; created when missing. */
  path: string;
  /** Bytes of segments kept at most; appends past it are refused (retryable). */
  maxBytes: number;
  /** Bytes per segment file before a new one is started. */
  segmentBytes: number;
  /** Inserts batches; in queued mode it retries until it succeeds, shuts down, or meets an error retrying cannot fix. */
  writer: Writer;
  /** Rows per insert. */
  maxRows: number;
  /** Longest a record waits before a smaller batch is written. */
  maxDelayMs: number;
  /** The agent's logger; the queue logs as component `queue`. */
  logger: Logger;
  /** Registry for the queue metrics. */
  metrics: Registry;
}

/** An on-disk queue (write-ahead log) between acknowledgement and ClickHouse. */
export interface DurableQueue {
  /** Recovers the log (cutting a torn tail, dropping empty segments), then starts writing queued data to storage. */
  start(): Promise<void>;
  /** Appends rows; resolves once they are fsynced. Throws RetryableError when the queue is full or the disk fails. */
  append(parts: readonly TableRows[]): Promise<void>;
  /** Records appended and not yet stored. */
  readonly depth: number;
  /** Bytes the queue holds on disk (of options.maxBytes). */
  readonly bytes: number;
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

interface Segment {
  path: string;
  first: bigint;
  /** Bytes known durable and whole; readers never look past it. */
  size: number;
}

/** Reads at most this much of a segment at once (a longer record is read whole). */
const READ_CHUNK = 4 << 20;
/** A batch ClickHouse refuses this many times for a reason retrying cannot fix goes to the dead-letter directory. */
const POISON_ATTEMPTS = 3;

/**
 * Creates the durable queue. Exactly once: before inserting records [from..to] the queue records
 * that plan; every insert carries a token derived from (queue id, from, to, table); after a crash
 * the same plan is replayed first, and ClickHouse drops the inserts that had already landed.
 */
export function createDurableQueue(options: DurableQueueOptions): DurableQueue {
  const dir = options.path;
  const logger = options.logger.child({ component: 'queue' });
  let state: State = { id: randomUUID(), committed: '0' };
  let segments: Segment[] = [];
  /** The file appends go to: the last segment, opened by this process (never an older one). */
  let handle: FileHandle | undefined;
  let nextSeq = 1n;
  let durableSeq = 0n;
  /** Bytes on disk plus bytes reserved by appends in flight. */
  let totalBytes = 0;
  let pending: Array<{ buf: Buffer; resolve: () => void; reject: (e: Error) => void }> = [];
  let flushing: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let stopped = false;
  let consumer: Promise<void> | undefined;
  /** The consumer's read position: which segment (by its first sequence number) and where in it. */
  let readPos = { first: 0n, offset: 0 };
  let plan: Plan | undefined;
  const committed = (): bigint => BigInt(state.committed);

  new Gauge({
    name: 'heimdall_exporter_queue_size',
    help: 'Requests in the durable queue not yet stored.',
    registers: [options.metrics],
    collect() {
      this.set(Number(durableSeq - committed()));
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
  const deadLettered = new Counter({
    name: 'heimdall_exporter_dead_letter_batches_total',
    help: 'Queued batches ClickHouse refused for good, moved to the dead-letter directory.',
    registers: [options.metrics],
  });

  const saveState = (): void => writeFileAtomic(dir, 'state.json', JSON.stringify(state));
  /** Starts a flush unless one runs; an append that lands as a flush ends starts the next one. */
  const kick = (): void => {
    flushing ??= flush().finally(() => {
      flushing = undefined;
      if (pending.length > 0) kick();
    });
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

  /** Starts a new segment at nextSeq; appends go there from now on. */
  const rotate = async (): Promise<Segment> => {
    await handle?.close();
    handle = undefined;
    const path = join(dir, segmentName(nextSeq));
    if (segments.some((s) => s.path === path)) throw new Error(`durable queue: segment ${path} exists already`);
    handle = await open(path, 'a');
    fsyncDir(dir);
    const seg = { path, first: nextSeq, size: 0 };
    segments.push(seg);
    return seg;
  };

  /** Writes every pending append with one write and one fdatasync (group commit). */
  const flush = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      const reserved = batch.reduce((n, p) => n + p.buf.length + HEADER_BYTES, 0);
      let seg = segments[segments.length - 1];
      try {
        if (!handle || !seg || seg.size >= options.segmentBytes) seg = await rotate();
        const bufs = batch.map((p) => encodeRecord(nextSeq++, p.buf));
        await handle?.writev(bufs);
        await handle?.datasync();
        seg.size += reserved;
        durableSeq = nextSeq - 1n;
        for (const p of batch) p.resolve();
        wake?.();
      } catch (err) {
        // Undo: cut the segment back to what is durable, so nothing after it is misread and the
        // refused records are never replayed. If even that fails, stop writing to this segment.
        // The refused records' sequence numbers are not reused.
        logger.error({ err }, 'durable queue: append failed');
        try {
          if (handle && seg) await handle.truncate(seg.size);
        } catch (truncateErr) {
          logger.error({ err: truncateErr }, 'durable queue: cannot cut back a failed append; starting a new segment');
          await handle?.close().catch(() => undefined);
          handle = undefined;
        }
        totalBytes -= reserved;
        for (const p of batch) p.reject(new RetryableError(`durable queue write failed: ${(err as Error).message}`, 1_000));
      }
    }
  };

  /** Reads `length` bytes of a segment from `offset`. */
  const readRange = async (path: string, offset: number, length: number): Promise<Buffer> => {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  };

  /**
   * Reads queued records after the read position: up to maxRows rows, or exactly up to `upTo`
   * when replaying a plan. Advances the read position past what it returns.
   */
  const readBatch = async (upTo?: bigint): Promise<{ records: WalRecord[]; rows: number }> => {
    const records: WalRecord[] = [];
    let rows = 0;
    for (;;) {
      let i = segments.findIndex((s) => s.first === readPos.first);
      if (i < 0) {
        // The segment read last was released: go on at the start of the next one.
        i = segments.findIndex((s) => s.first > readPos.first);
        if (i < 0) i = 0;
        const s = segments[i];
        if (!s) break;
        readPos = { first: s.first, offset: 0 };
      }
      const seg = segments[i];
      if (!seg) break;
      if (readPos.offset >= seg.size) {
        const next = segments[i + 1];
        if (!next) break;
        readPos = { first: next.first, offset: 0 };
        continue;
      }
      let data = await readRange(seg.path, readPos.offset, Math.min(seg.size - readPos.offset, READ_CHUNK));
      let parsed = parseRecords(data, readPos.offset);
      if (parsed.records.length === 0 && data.length >= HEADER_BYTES) {
        // One record longer than the chunk: read it whole.
        data = await readRange(seg.path, readPos.offset, Math.min(seg.size - readPos.offset, HEADER_BYTES + data.readUInt32LE(0)));
        parsed = parseRecords(data, readPos.offset);
      }
      if (parsed.records.length === 0) {
        throw new Error(`durable queue: unreadable record in ${seg.path} at byte ${readPos.offset}`);
      }
      for (const r of parsed.records) {
        if (r.seq <= committed()) {
          readPos.offset = r.end;
          continue;
        }
        if (upTo !== undefined ? r.seq > upTo : rows >= options.maxRows) return { records, rows };
        records.push(r);
        rows += countRows(r.payload);
        readPos.offset = r.end;
      }
    }
    return { records, rows };
  };

  /** Inserts one planned batch, table by table, each with its deterministic token. */
  const store = async (records: readonly WalRecord[], p: Plan): Promise<Error | undefined> => {
    const byTable = new Map<string, { data: Buffer[]; rows: number }>();
    for (const r of records) {
      for (const part of decodeParts(r.payload)) {
        const t = byTable.get(part.table) ?? { data: [], rows: 0 };
        t.data.push(part.data);
        t.rows += part.rows;
        byTable.set(part.table, t);
      }
    }
    for (const [table, t] of byTable) {
      const result = await options.writer.write(table, Buffer.concat(t.data), t.rows, `${state.id}:${p.from}-${p.to}:${table}`);
      if (result.status !== 'ok') return result.error;
    }
    return undefined;
  };

  /** Keeps a batch ClickHouse will never take, so the queue can move on without losing it. */
  const deadLetter = (records: readonly WalRecord[], p: Plan, error: Error): void => {
    const target = join(dir, 'dead-letter');
    mkdirSync(target, { recursive: true });
    const file = join(target, `${p.from}-${p.to}.jsonl`);
    // One line per part: JSONEachRow rows as text, RowBinary rows in base64.
    const line = (part: RecordPart): string => {
      const { format } = insertOptionsFor(part.table);
      return JSON.stringify({ table: part.table, rows: part.rows, format, data: part.data.toString(format === 'RowBinary' ? 'base64' : 'utf8') });
    };
    writeFileSync(file, records.flatMap((r) => decodeParts(r.payload).map(line)).join('\n') + '\n');
    fsyncDir(target);
    deadLettered.inc();
    logger.error({ err: error, file, records: records.length }, 'durable queue: ClickHouse refuses this batch for good; kept it in the dead-letter directory and moved on');
  };

  const releaseSegments = (): void => {
    let released = false;
    // A segment goes once the next one starts at or below the first record not yet stored.
    for (let next = segments[1]; next && next.first <= committed() + 1n; next = segments[1]) {
      const gone = segments.shift();
      if (!gone) break;
      rmSync(gone.path, { force: true });
      totalBytes -= gone.size;
      released = true;
    }
    if (released) fsyncDir(dir);
  };

  const commit = (p: Plan): void => {
    state = { ...state, committed: p.to };
    saveState();
    rmSync(join(dir, 'plan.json'), { force: true });
    plan = undefined;
    releaseSegments();
  };

  const consume = async (): Promise<void> => {
    while (!stopped) {
      try {
        const start = { ...readPos };
        let batch = plan ? await readBatch(BigInt(plan.to)) : await readBatch();
        if (batch.records.length === 0) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, options.maxDelayMs).unref();
          });
          wake = undefined;
          continue;
        }
        if (!plan) {
          // Let a small batch grow for up to maxDelay, then take what there is.
          if (batch.rows < options.maxRows && !stopped) {
            await sleep(options.maxDelayMs);
            readPos = start;
            batch = await readBatch();
          }
          const first = batch.records[0];
          const last = batch.records[batch.records.length - 1];
          if (!first || !last) continue;
          plan = { from: first.seq.toString(), to: last.seq.toString() };
          writeFileAtomic(dir, 'plan.json', JSON.stringify(plan));
        }
        const p = plan;
        let error: Error | undefined;
        for (let attempt = 1; attempt <= POISON_ATTEMPTS && !stopped; attempt++) {
          error = await store(batch.records, p);
          if (!error) break;
          if (!stopped && attempt < POISON_ATTEMPTS) await sleep(1_000 * attempt);
        }
        if (!error) {
          commit(p);
          continue;
        }
        // Shutting down: the plan stays on disk and is replayed first at the next start.
        if (stopped) break;
        deadLetter(batch.records, p, error);
        commit(p);
      } catch (err) {
        logger.error({ err }, 'durable queue: consumer error; retrying in 1 s');
        await sleep(1_000);
      }
    }
  };

  return {
    get depth() {
      return Number(durableSeq - committed());
    },
    get bytes() {
      return totalBytes;
    },
    async start() {
      mkdirSync(dir, { recursive: true });
      if (existsSync(join(dir, 'state.json'))) state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as State;
      else saveState();
      if (existsSync(join(dir, 'plan.json'))) plan = JSON.parse(readFileSync(join(dir, 'plan.json'), 'utf8')) as Plan;
      let last = committed();
      const kept: Segment[] = [];
      for (const seg of listSegments(dir)) {
        const { records, validEnd, size } = readSegment(seg.path);
        if (validEnd < size) {
          logger.warn({ segment: seg.path, validEnd, size }, 'durable queue: cutting a torn or corrupt record and what follows it in the segment');
          truncateTo(seg.path, validEnd);
        }
        const tail = records[records.length - 1];
        if (!tail) {
          // Created but never written before a crash: drop it, or a new segment could take its name.
          rmSync(seg.path, { force: true });
          continue;
        }
        if (tail.seq > last) last = tail.seq;
        kept.push({ path: seg.path, first: seg.first, size: validEnd });
      }
      fsyncDir(dir);
      segments = kept;
      totalBytes = segments.reduce((n, s) => n + s.size, 0);
      nextSeq = last + 1n;
      durableSeq = last;
      readPos = { first: segments[0]?.first ?? 0n, offset: 0 };
      if (plan && BigInt(plan.from) !== committed() + 1n) plan = undefined;
      logger.info({ path: dir, backlog: Number(durableSeq - committed()), bytes: totalBytes, replayingPlan: plan ?? null }, 'durable queue opened');
      releaseSegments();
      consumer = consume();
    },
    async append(parts) {
      if (stopped) throw new RetryableError('the agent is shutting down', 1_000);
      const buf = encodeParts(parts);
      if (totalBytes + buf.length + HEADER_BYTES > options.maxBytes) throw new RetryableError(`durable queue is full (${totalBytes} of ${options.maxBytes} bytes)`, 5_000);
      totalBytes += buf.length + HEADER_BYTES;
      await new Promise<void>((resolve, reject) => {
        pending.push({ buf, resolve, reject });
        kick();
      });
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      while (flushing) await flushing;
      options.writer.shutdown();
      wake?.();
      await consumer;
      await handle?.close();
      handle = undefined;
      logger.info({ backlog: Number(durableSeq - committed()) }, 'durable queue closed');
    },
  };
}
