import { describe, expect, it } from 'vitest';
import { createGroupCommit } from '../../../src/ingest/pipeline/group-commit.js';

/** A write that waits until released, recording each batch. */
function gatedWrites(fail?: (batch: string[]) => boolean) {
  const batches: string[][] = [];
  const gates: Array<() => void> = [];
  const write = async (batch: string[]): Promise<void> => {
    batches.push(batch);
    await new Promise<void>((resolve) => gates.push(resolve));
    if (fail?.(batch)) throw new Error(`cannot write ${batch.join(',')}`);
  };
  const release = async (): Promise<void> => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()?.();
  };
  return { batches, write, release };
}

describe('group commit', () => {
  it('items added while a batch is written go together in the next one, in order; each resolves after its batch', async () => {
    const w = gatedWrites();
    let written = 0;
    const commit = createGroupCommit({ write: w.write, onWritten: () => written++ });
    const settled: string[] = [];
    const first = commit.add('a').then(() => settled.push('a'));
    const rest = ['b', 'c', 'd'].map((x) => commit.add(x).then(() => settled.push(x)));
    expect(w.batches).toEqual([['a']]);
    await w.release();
    await first;
    expect(settled).toEqual(['a']);
    await w.release();
    await Promise.all(rest);
    expect(w.batches).toEqual([['a'], ['b', 'c', 'd']]);
    expect(settled).toEqual(['a', 'b', 'c', 'd']);
    expect(written).toBe(2);
    await commit.idle();
  });

  it('a failed batch rejects all its items with its error, and only them; the next batch is written', async () => {
    const w = gatedWrites((batch) => batch.includes('b'));
    let written = 0;
    const commit = createGroupCommit({ write: w.write, onWritten: () => written++ });
    const a = commit.add('a');
    const b = commit.add('b');
    const c = commit.add('c');
    await w.release();
    await a;
    const failed = Promise.allSettled([b, c]);
    await w.release();
    expect((await failed).map((r) => (r.status === 'rejected' ? (r.reason as Error).message : r.status))).toEqual(['cannot write b,c', 'cannot write b,c']);
    expect(written).toBe(1);
    const d = commit.add('d');
    await w.release();
    await d;
    expect(w.batches).toEqual([['a'], ['b', 'c'], ['d']]);
    expect(written).toBe(2);
  });

  it('idle waits for the batch being written and the ones waiting behind it', async () => {
    const w = gatedWrites();
    const commit = createGroupCommit({ write: w.write, onWritten: () => undefined });
    await commit.idle();
    const done: string[] = [];
    void commit.add('a').then(() => done.push('a'));
    void commit.add('b').then(() => done.push('b'));
    const idle = commit.idle().then(() => done.push('idle'));
    await w.release();
    await w.release();
    await idle;
    expect(done).toEqual(['a', 'b', 'idle']);
  });
});
