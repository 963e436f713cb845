import type { ExportLogsServiceRequest } from '../../gen/opentelemetry/proto/collector/logs/v1/logs_service_pb.js';
import type { LogRecord } from '../../gen/opentelemetry/proto/logs/v1/logs_pb.js';
import { LOGS } from '../../storage/tables.js';
import { nanosToDateTime64 } from '../../time/datetime64.js';
import { ConversionBuilder, type Conversion } from './result.js';
import { anyValueToString, attributesToMap, serviceNameOf, toHex } from './values.js';

function invalidLog(log: LogRecord): string | undefined {
  if (log.traceId.length !== 0 && log.traceId.length !== 16) return `trace_id must be empty or 16 bytes, got ${log.traceId.length}`;
  if (log.spanId.length !== 0 && log.spanId.length !== 8) return `span_id must be empty or 8 bytes, got ${log.spanId.length}`;
  return undefined;
}

/**
 * Converts an OTLP logs export into otel_logs rows. The body of any AnyValue type is stored as
 * text (maps and arrays as JSON); a record without a time takes its observed time.
 */
export function logsToRows(request: ExportLogsServiceRequest): Conversion {
  const out = new ConversionBuilder();
  request.resourceLogs.forEach((rl, r) => {
    const resourceAttributes = attributesToMap(rl.resource?.attributes ?? []);
    const serviceName = serviceNameOf(rl.resource?.attributes ?? []);
    rl.scopeLogs.forEach((sl, s) => {
      const scopeAttributes = attributesToMap(sl.scope?.attributes ?? []);
      sl.logRecords.forEach((log, i) => {
        const invalid = invalidLog(log);
        if (invalid) return out.reject(1, `resource_logs[${r}].scope_logs[${s}].log_records[${i}]: ${invalid}`);
        const severity: number = log.severityNumber;
        out.add(LOGS.name, {
          Timestamp: nanosToDateTime64(log.timeUnixNano !== 0n ? log.timeUnixNano : log.observedTimeUnixNano),
          TraceId: toHex(log.traceId),
          SpanId: toHex(log.spanId),
          TraceFlags: log.flags & 0xff,
          SeverityText: log.severityText,
          // The column is UInt8; an out-of-range enum value would make ClickHouse refuse the whole batch.
          SeverityNumber: severity >= 0 && severity <= 255 ? severity : 0,
          ServiceName: serviceName,
          Body: anyValueToString(log.body),
          ResourceSchemaUrl: rl.schemaUrl,
          ResourceAttributes: resourceAttributes,
          ScopeSchemaUrl: sl.schemaUrl,
          ScopeName: sl.scope?.name ?? '',
          ScopeVersion: sl.scope?.version ?? '',
          ScopeAttributes: scopeAttributes,
          LogAttributes: attributesToMap(log.attributes),
          EventName: log.eventName,
        });
      });
    });
  });
  return out.build();
}
