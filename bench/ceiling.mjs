// Same-run ceilings on one core: how many spans/s generic decoding alone (@bufbuild fromBinary)
// reaches, and decoding + conversion to rows + JSONEachRow encoding (the agent's CPU path before storage).
import { fromBinary } from '@bufbuild/protobuf';
import { readFileSync } from 'node:fs';
import { ExportTraceServiceRequestSchema } from '../dist/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { tracesToRows } from '../dist/ingest/otlp/traces.js';
import { encodeTables } from '../dist/ingest/pipeline/formats.js';

const [, , bodyFile, durationMs, spansPerRequest] = process.argv;
const body = readFileSync(bodyFile);
function rate(fn) {
  const end = performance.now() + Number(durationMs);
  let n = 0;
  while (performance.now() < end) {
    fn();
    n++;
  }
  return (n * Number(spansPerRequest)) / (Number(durationMs) / 1000);
}
rate(() => fromBinary(ExportTraceServiceRequestSchema, body)); // warm up
const decode = rate(() => fromBinary(ExportTraceServiceRequestSchema, body));
const full = rate(() => encodeTables(tracesToRows(fromBinary(ExportTraceServiceRequestSchema, body))));
process.stdout.write(JSON.stringify({ decode, full }) + '\n');
