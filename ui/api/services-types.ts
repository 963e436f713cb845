/**
 * The proto3 JSON shapes of QueryService's ListServices and GetRedSeries answers (see types.ts for
 * the conventions: absent fields are defaults, 64-bit integers are strings).
 */

export interface Operation {
  spanName?: string;
  spanCount?: string;
  errorCount?: string;
}

export interface ServiceOperations {
  serviceName?: string;
  spanCount?: string;
  errorCount?: string;
  operations?: Operation[];
  operationsTruncated?: boolean;
}

export interface ListServicesResponse {
  startTime?: string;
  endTime?: string;
  services?: ServiceOperations[];
  truncated?: boolean;
}

/** Values per bucket, aligned with GetRedSeriesResponse.bucketTimes. */
export interface RedSeries {
  serviceName?: string;
  spanName?: string;
  requests?: string[];
  rate?: number[];
  errors?: string[];
  errorRate?: number[];
  p50Ms?: number[];
  p95Ms?: number[];
  p99Ms?: number[];
}

export interface GetRedSeriesResponse {
  startTime?: string;
  endTime?: string;
  stepSeconds?: number;
  bucketTimes?: string[];
  series?: RedSeries[];
  truncated?: boolean;
}
