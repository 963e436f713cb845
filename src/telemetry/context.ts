import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/** Per-request context carried through every async call the request causes. */
export interface RequestContext {
  correlationId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** The header / metadata key that carries the correlation id in and out. */
export const CORRELATION_HEADER = 'x-correlation-id';

const VALID_ID = /^[\x21-\x7e]{1,128}$/;

/** Takes an incoming id when it is printable ASCII of at most 128 characters, or makes a new one. */
export function correlationIdFrom(incoming: unknown): string {
  return typeof incoming === 'string' && VALID_ID.test(incoming) ? incoming : randomUUID();
}

/** Runs fn with ctx as the current request context. */
export function runWithContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** The current request's context, if any. */
export function currentContext(): RequestContext | undefined {
  return storage.getStore();
}
