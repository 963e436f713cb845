/**
 * The proto3 JSON shapes (as the Connect API answers) of the heimdall.v1 messages the console reads.
 * Absent fields are their defaults: proto3 JSON leaves them out; 64-bit integers are strings.
 */

export interface ComponentStatus {
  name: string;
  state?: string;
  since?: string;
  reason?: string;
  gate?: string;
}

export interface GetStatusResponse {
  version?: string;
  build?: string;
  startedAt?: string;
  uptimeSeconds?: number;
  configHash?: string;
  ready?: boolean;
  strictReady?: boolean;
  status?: string;
  reasons?: string[];
  degraded?: string[];
  components?: ComponentStatus[];
}

export interface LogRecord {
  id?: string;
  timestamp?: string;
  serviceName?: string;
  severityText?: string;
  severityNumber?: number;
  body?: string;
  traceId?: string;
  spanId?: string;
  attributes?: Record<string, string>;
}

export interface ListLogsResponse {
  records?: LogRecord[];
  nextPageToken?: string;
}

export interface Event {
  id?: string;
  timestamp?: string;
  eventType?: string;
  source?: string;
  severity?: string;
  category?: string;
  message?: string;
  correlationId?: string;
  traceId?: string;
  tenantId?: string;
  actorId?: string;
  status?: string;
}

export interface ListEventsResponse {
  events?: Event[];
  nextPageToken?: string;
}

export interface Job {
  id?: string;
  jobName?: string;
  kind?: string;
  trigger?: string;
  status?: string;
  attempt?: number;
  progress?: number;
  message?: string;
  error?: string;
  correlationId?: string;
  createdAt?: string;
  startedAt?: string;
  endedAt?: string;
}

export interface ScheduledJob {
  name: string;
  schedule?: string;
  timeZone?: string;
  kind?: string;
  paused?: boolean;
  source?: string;
  nextRunTime?: string;
  lastRun?: Job;
}

export interface ListScheduledJobsResponse {
  jobs?: ScheduledJob[];
}

export interface ListRunsResponse {
  runs?: Job[];
  nextPageToken?: string;
}

export interface JobResponse {
  job?: Job;
}
