import { timestampDate } from '@bufbuild/protobuf/wkt';
import { SEVERITY_NAMES } from '../events/events.js';
import type { Span, TimelineItem } from '../gen/heimdall/v1/query_pb.js';
import { cut } from './common.js';

/** Attributes the tree shows per span (sorted by key; `--json` shows them all). */
export const SPAN_ATTRIBUTES_SHOWN = 8;
/** Characters of an attribute value the tree shows. */
export const ATTRIBUTE_VALUE_CHARS = 80;

/** A span's head line after its offset: service, name, kind, duration, status and status message; for an orphan, the parent it names. */
function spanHead(s: Span): string {
  const status = `${s.statusCode.toLowerCase() || 'unset'}${s.statusMessage ? `: ${cut(s.statusMessage, ATTRIBUTE_VALUE_CHARS)}` : ''}`;
  const orphan = s.orphan ? ` [orphan: parent ${s.parentSpanId} not stored]` : '';
  return `${s.serviceName} ${s.name} (${s.kind.toLowerCase() || 'unspecified'}, ${s.durationMs.toFixed(1)} ms, ${status})${orphan}`;
}

/** A span's attributes, one `key=value` a line, the first SPAN_ATTRIBUTES_SHOWN by key, values cut; then how many more. */
function spanAttributes(s: Span): string[] {
  const keys = Object.keys(s.attributes).sort();
  const lines = keys.slice(0, SPAN_ATTRIBUTES_SHOWN).map((k) => `${k}=${cut(JSON.stringify(s.attributes[k]).slice(1, -1), ATTRIBUTE_VALUE_CHARS)}`);
  const more = keys.length - SPAN_ATTRIBUTES_SHOWN;
  return more > 0 ? [...lines, `… ${more} more attribute${more === 1 ? '' : 's'} (--json shows all)`] : lines;
}

/**
 * A trace timeline (in GetTrace's tree order) as an indented tree, one string a line: each item's
 * offset from the earliest, spans by depth with kind, duration, status and their attributes under
 * them, orphans marked, logs and events under the span they belong to. Attribute values keep to one
 * line (control characters escaped).
 */
export function formatTimeline(items: TimelineItem[]): string[] {
  // Items are in tree order, not time order: offsets count from the earliest.
  const start = Math.min(...items.flatMap((it) => (it.time ? [timestampDate(it.time).getTime()] : [])));
  const depthOfSpan = new Map<string, number>();
  for (const it of items) if (it.item.case === 'span') depthOfSpan.set(it.item.value.spanId, it.item.value.depth);
  const lines: string[] = [];
  for (const it of items) {
    const offset = `+${String((it.time ? timestampDate(it.time).getTime() : start) - start).padStart(6)} ms`;
    const v = it.item;
    if (v.case === 'span') {
      const indent = '  '.repeat(v.value.depth);
      lines.push(`${offset}  ${indent}${spanHead(v.value)}`);
      for (const a of spanAttributes(v.value)) lines.push(`${' '.repeat(offset.length)}  ${indent}    ${a}`);
    } else if (v.case === 'log') {
      const d = (depthOfSpan.get(v.value.spanId) ?? -1) + 1;
      lines.push(`${offset}  ${'  '.repeat(d)}· log ${v.value.severityText || v.value.severityNumber}: ${v.value.body}`);
    } else if (v.case === 'event') {
      const d = (depthOfSpan.get(v.value.spanId) ?? -1) + 1;
      lines.push(`${offset}  ${'  '.repeat(d)}◆ event ${SEVERITY_NAMES[v.value.severity] ?? v.value.severity} ${v.value.source}/${v.value.eventType}: ${v.value.message}`);
    }
  }
  return lines;
}
