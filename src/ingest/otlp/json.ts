const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId', 'trace_id', 'span_id', 'parent_span_id']);
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/**
 * Rewrites OTLP/JSON ids for the protobuf JSON decoder: OTLP/JSON writes trace and span ids as
 * hex, where proto3 JSON expects base64. Only object keys named like id fields are touched (attribute
 * keys are values, never object keys, so they are safe). A value that is not hex is left for the
 * decoder to refuse.
 */
export function hexIdsToBase64(node: unknown): unknown {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = hexIdsToBase64(node[i]);
    return node;
  }
  if (node !== null && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      const value = obj[key];
      if (ID_FIELDS.has(key) && typeof value === 'string' && HEX.test(value)) obj[key] = Buffer.from(value, 'hex').toString('base64');
      else if (value !== null && typeof value === 'object') hexIdsToBase64(value);
    }
  }
  return node;
}
