import { invalidFields } from '../errors/agent-error.js';
import type { QueryParams } from '../storage/transport.js';
import type { Range } from './budget.js';

/** Buckets of a series when the request says 0, and the most it may ask for. */
const DEFAULT_BUCKETS = 60;
export const MAX_BUCKETS = 300;

const SECOND_NS = 1_000_000_000n;
const DAY_NS = 86_400n * SECOND_NS;
/** Bucket widths below a day, in seconds; past them, whole days. */
const STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200];

/** The time buckets of a series: width, index of the first (buckets start at multiples of the width since the epoch), count. */
export interface Buckets {
  stepNs: bigint;
  first: bigint;
  count: number;
}

const floorDiv = (a: bigint, b: bigint): bigint => (a >= 0n ? a / b : -((-a + b - 1n) / b));

/** How many buckets of width `step` cover [start, end). */
const countOf = (range: Range, step: bigint): bigint => floorDiv(range.end - 1n, step) - floorDiv(range.start, step) + 1n;

/**
 * The buckets of `range`: the narrowest width of 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1,
 * 2, 3, 6, 12 h or whole days whose buckets, aligned to the epoch, number at most `requested`
 * (DEFAULT_BUCKETS when 0). INVALID_ARGUMENT naming max_buckets unless 0 or 2 to MAX_BUCKETS.
 */
export function bucketsOf(range: Range, requested: number): Buckets {
  if (requested === 1 || requested > MAX_BUCKETS) throw invalidFields([{ field: 'max_buckets', description: `2 to ${MAX_BUCKETS} (${DEFAULT_BUCKETS} when 0), got ${requested}` }]);
  const max = BigInt(requested === 0 ? DEFAULT_BUCKETS : requested);
  let step = STEPS_S.map((s) => BigInt(s) * SECOND_NS).find((s) => countOf(range, s) <= max);
  if (step === undefined) {
    // Whole days: at least the window over (max - 1) buckets, so the aligned buckets number at most max.
    const width = range.end - range.start;
    step = ((width + (max - 1n) * DAY_NS - 1n) / ((max - 1n) * DAY_NS)) * DAY_NS;
    while (countOf(range, step) > max) step += DAY_NS;
  }
  return { stepNs: step, first: floorDiv(range.start, step), count: Number(countOf(range, step)) };
}

/** SQL of a row's bucket index (0 for the first bucket) from its Timestamp; parameters in bucketParams. */
export const BUCKET_INDEX = 'intDiv(toUnixTimestamp64Nano(Timestamp), {step:Int64}) - {first:Int64}';

/** The parameters of BUCKET_INDEX. */
export const bucketParams = (b: Buckets): QueryParams => ({ step: b.stepNs.toString(), first: b.first.toString() });

/** Start of each bucket, ns since the epoch. */
export const bucketStarts = (b: Buckets): bigint[] => Array.from({ length: b.count }, (_, i) => (b.first + BigInt(i)) * b.stepNs);

/** Seconds of each bucket inside `range` (the first and last may reach outside it). */
export function secondsInside(b: Buckets, range: Range): number[] {
  return bucketStarts(b).map((s) => {
    const from = s > range.start ? s : range.start;
    const to = s + b.stepNs < range.end ? s + b.stepNs : range.end;
    return Number(to - from) / 1e9;
  });
}
