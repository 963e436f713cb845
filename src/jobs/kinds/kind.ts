import type { Logger } from '../../telemetry/logger.js';
import type { KindName } from './params.js';

/** What a task knows about the run it does. */
export interface TaskContext {
  runId: string;
  /** The scheduled job's name; empty for an on-demand job. */
  jobName: string;
  correlationId: string;
  /** Aborts on cancel, timeout, lease loss or shutdown: the task stops its work soon after. */
  signal: AbortSignal;
  /** Reports progress: percent 0-100 and what is being done. */
  progress(percent: number, message: string): void;
  logger: Logger;
}

/** The outcome of a task that succeeded: facts for the run's `result` (and its message, when given). */
export interface TaskResult {
  message: string;
  result: Record<string, unknown>;
}

/** Runs one task with its raw parameters (validated again here); throws to fail the attempt. */
export type TaskRunner = (params: Record<string, unknown>, ctx: TaskContext) => Promise<TaskResult>;

/** A runner for every task kind. */
export type TaskKinds = Record<KindName, TaskRunner>;
