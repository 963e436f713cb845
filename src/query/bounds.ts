import { invalidFields } from '../errors/agent-error.js';

/** A request's count: `fallback` when 0, INVALID_ARGUMENT naming `field` past `max`. */
export function boundedCount(n: number, field: string, fallback: number, max: number): number {
  if (n > max) throw invalidFields([{ field, description: `at most ${max}, got ${n}` }]);
  return n === 0 ? fallback : n;
}

/** The longest service or span name a filter takes. */
export const MAX_NAME = 1024;

/** INVALID_ARGUMENT naming `field` when `value` is longer than `max` characters. */
export function boundedText(value: string, field: string, max = MAX_NAME): string {
  if (value.length > max) throw invalidFields([{ field, description: `at most ${max} characters, got ${value.length}` }]);
  return value;
}
