/**
 * Takes the heavy steps of requests (decoding, converting, encoding) one per event-loop iteration,
 * in the order they asked: between two steps the loop polls for I/O, so a probe or any other
 * request waits behind one step at most, not behind every step of every request decoding at once.
 */
export interface Turns {
  /** Resolves when the caller may run its next step (synchronously, then ask again). Never rejects. */
  next(): Promise<void>;
  /** Steps waiting for their turn. */
  readonly waiting: number;
}

/** Creates a queue of turns (one state: the steps waiting). */
export function createTurns(): Turns {
  const waiting: Array<() => void> = [];
  let scheduled = false;
  const schedule = (): void => {
    if (scheduled || waiting.length === 0) return;
    scheduled = true;
    // An immediate set while the loop runs immediates runs in the next iteration, after its I/O poll.
    setImmediate(() => {
      scheduled = false;
      waiting.shift()?.();
      // The step runs in the microtasks after this callback; the next one waits for the next iteration.
      schedule();
    });
  };
  return {
    next() {
      return new Promise<void>((resolve) => {
        waiting.push(resolve);
        schedule();
      });
    },
    get waiting() {
      return waiting.length;
    },
  };
}
