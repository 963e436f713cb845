/**
 * The proto3 JSON shapes of the heimdall.v1 trace messages the console reads (SearchTraces, GetTrace,
 * ListServices); as in types.ts, absent fields are their defaults and 64-bit integers are strings.
 */
import type { Event, LogRecord } from './types.js';

export interface Span {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  serviceName?: string;
  /** `Server`, `Client`, `Internal`, `Producer`, `Consumer`, `Unspecified`. */
  kind?: string;
  startTime?: string;
  durationMs?: number;
  /** `Unset`, `Ok` or `Error`. */
  statusCode?: string;
  statusMessage?: string;
  attributes?: Record<string, string>;
  depth?: number;
  orphan?: boolean;
}

/** A Heimdall event on a trace's timeline (the span it names, if any). */
export type TraceEvent = Event & { spanId?: string };

/** One entry of a GetTrace timeline: exactly one of span, log, event. */
export interface TimelineItem {
  time?: string;
  span?: Span;
  log?: LogRecord;
  event?: TraceEvent;
}

export interface GetTraceResponse {
  traceIds?: string[];
  items?: TimelineItem[];
  spanCount?: number;
  logCount?: number;
  eventCount?: number;
}

export interface TraceSummary {
  traceId: string;
  rootServiceName?: string;
  rootSpanName?: string;
  rootMissing?: boolean;
  startTime?: string;
  durationMs?: number;
  spanCount?: number;
  errorCount?: number;
  services?: string[];
}

export interface SearchTracesResponse {
  traces?: TraceSummary[];
  nextPageToken?: string;
}

export interface ServiceOperations {
  serviceName: string;
  spanCount?: string;
  errorCount?: string;
  operations?: Array<{ spanName: string; spanCount?: string; errorCount?: string }>;
  operationsTruncated?: boolean;
}

export interface ListServicesResponse {
  services?: ServiceOperations[];
  truncated?: boolean;
}
