/** Options for createGroupCommit. */
export interface GroupCommitOptions<T> {
  /** Writes one batch durably: every item added while the previous batch was being written. Throws when it did not complete. */
  write(batch: T[]): Promise<void>;
  /** Called after a batch was written and its items' promises were resolved. */
  onWritten: () => void;
}

/**
 * Group commit: items added while a batch is being written wait and go together in the next batch,
 * so N concurrent appends cost one write (and one fdatasync), not N. Batches are written one at a
 * time, in the order their items were added.
 */
export interface GroupCommit<T> {
  /** Adds an item; resolves once its batch was written, rejects with the batch's error. */
  add(item: T): Promise<void>;
  /** Resolves once no batch is being written or waiting. Never rejects. */
  idle(): Promise<void>;
}

/** Creates a group commit over `write`. */
export function createGroupCommit<T>(options: GroupCommitOptions<T>): GroupCommit<T> {
  let pending: Array<{ item: T; resolve: () => void; reject: (e: Error) => void }> = [];
  let flushing: Promise<void> | undefined;

  const flush = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        await options.write(batch.map((p) => p.item));
        for (const p of batch) p.resolve();
        options.onWritten();
      } catch (err) {
        for (const p of batch) p.reject(err as Error);
      }
    }
  };

  const kick = (): void => {
    flushing ??= flush().finally(() => {
      flushing = undefined;
      if (pending.length > 0) kick();
    });
  };

  return {
    add(item) {
      return new Promise<void>((resolve, reject) => {
        pending.push({ item, resolve, reject });
        kick();
      });
    },
    async idle() {
      while (flushing) await flushing;
    },
  };
}
