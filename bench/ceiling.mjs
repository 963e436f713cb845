// Same-run ceilings on one core: how many spans/s generic decoding alone (@bufbuild fromBinary)
// reaches; the generic path (decode, convert to rows, default processors, encode); and the hot path
// (wire bytes straight to RowBinary rows, default processors) that the agent runs.
import { fromBinary } from '@bufbuild/protobuf';
import { readFileSync } from 'node:fs';
import { ExportTraceServiceRequestSchema } from '../dist/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { tracesToRows } from '../dist/ingest/otlp/traces.js';
import { encodeTraceRequest } from '../dist/ingest/otlp/traces-wire.js';
import { encodeTables } from '../dist/ingest/pipeline/formats.js';
import { createRedaction, DEFAULT_KEY_PATTERNS } from '../dist/ingest/processors/redaction.js';

const [, , bodyFile, durationMs, spansPerRequest] = process.argv;
const body = readFileSync(bodyFile);
const redaction = createRedaction({ keys: DEFAULT_KEY_PATTERNS, values: [], builtins: true, replacement: '[REDACTED]' });
function rate(fn) {
  const end = performance.now() + Number(durationMs);
  let n = 0;
  while (performance.now() < end) {
    fn();
    n++;
  }
  return (n * Number(spansPerRequest)) / (Number(durationMs) / 1000);
}
const decodeOnly = () => fromBinary(ExportTraceServiceRequestSchema, body);
const generic = () => {
  const c = tracesToRows(fromBinary(ExportTraceServiceRequestSchema, body));
  redaction.process(c);
  encodeTables(c);
};
const hot = () => encodeTraceRequest(body, { resourceDefaults: {}, redaction });
rate(decodeOnly); // warm-up
rate(hot);
process.stdout.write(JSON.stringify({ decode: rate(decodeOnly), generic: rate(generic), hot: rate(hot) }) + '\n');
