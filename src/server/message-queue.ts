/** Messages handed from a handler that pushes them (`send`) to a reader that pulls them (`for await`). */
export interface MessageQueue<T> extends AsyncIterable<T> {
  /** Queues a message; resolves once the reader took it, at once when the reader has left or the queue ended. */
  push(message: T): Promise<void>;
  /** Ends the queue: the reader gets the messages queued, then the end. Later calls (and fail) are ignored. */
  end(): void;
  /** Ends the queue with an error: the reader gets the messages queued, then `err` is thrown. Later calls are ignored. */
  fail(err: unknown): void;
}

/**
 * Creates a queue read once. Each push waits for the reader (one message in hand at a time), so a
 * slow reader slows the handler; once the reader leaves (returns early), pushes resolve at once.
 */
export function createMessageQueue<T>(): MessageQueue<T> {
  const items: Array<{ message: T; taken: () => void }> = [];
  let ended: { failed: boolean; err: unknown } | undefined;
  let left = false;
  let wake: (() => void) | undefined;
  const signal = (): void => {
    wake?.();
    wake = undefined;
  };
  return {
    push(message) {
      if (left || ended) return Promise.resolve();
      return new Promise<void>((taken) => {
        items.push({ message, taken });
        signal();
      });
    },
    end() {
      ended ??= { failed: false, err: undefined };
      signal();
    },
    fail(err) {
      ended ??= { failed: true, err };
      signal();
    },
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const item = items.shift();
          if (item) {
            item.taken();
            yield item.message;
          } else if (ended) {
            if (ended.failed) throw ended.err;
            return;
          } else await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        left = true;
        for (const rest of items.splice(0)) rest.taken();
      }
    },
  };
}
