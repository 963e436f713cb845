import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { AnyValueSchema, KeyValueSchema } from '../../../src/gen/opentelemetry/proto/common/v1/common_pb.js';
import { anyValueToString, attributesToMap, isZero, serviceNameOf, toHex } from '../../../src/ingest/otlp/values.js';
import { hexIdsToBase64 } from '../../../src/ingest/otlp/json.js';

const av = (value: Parameters<typeof create<typeof AnyValueSchema>>[1]) => create(AnyValueSchema, value);

describe('OTLP values', () => {
  it('renders AnyValue as the Collector does', () => {
    expect(anyValueToString(av({ value: { case: 'stringValue', value: 'x' } }))).toBe('x');
    expect(anyValueToString(av({ value: { case: 'boolValue', value: false } }))).toBe('false');
    expect(anyValueToString(av({ value: { case: 'intValue', value: -9007199254740993n } }))).toBe('-9007199254740993');
    expect(anyValueToString(av({ value: { case: 'doubleValue', value: 0.25 } }))).toBe('0.25');
    expect(anyValueToString(av({ value: { case: 'doubleValue', value: Number.POSITIVE_INFINITY } }))).toBe('+Inf');
    expect(anyValueToString(av({ value: { case: 'bytesValue', value: new Uint8Array([1, 2, 255]) } }))).toBe('AQL/');
    expect(
      anyValueToString(
        av({
          value: {
            case: 'kvlistValue',
            value: { values: [{ key: 'a', value: { value: { case: 'arrayValue', value: { values: [{ value: { case: 'intValue', value: 1n } }, { value: { case: 'stringValue', value: 's' } }] } } } }] },
          },
        }),
      ),
    ).toBe('{"a":[1,"s"]}');
    expect(anyValueToString(undefined)).toBe('');
  });

  it('sorts attribute keys and keeps the last value of a repeated key', () => {
    const kv = (key: string, v: string) => create(KeyValueSchema, { key, value: { value: { case: 'stringValue', value: v } } });
    const map = attributesToMap([kv('z', '1'), kv('a', '2'), kv('m', '3'), kv('a', '4')]);
    expect(Object.keys(map)).toEqual(['a', 'm', 'z']);
    expect(map).toEqual({ a: '4', m: '3', z: '1' });
    expect(serviceNameOf([kv('service.name', 'svc')])).toBe('svc');
    expect(serviceNameOf([])).toBe('');
  });

  it('formats ids exactly', () => {
    expect(toHex(new Uint8Array([0, 15, 16, 255]))).toBe('000f10ff');
    expect(isZero(new Uint8Array(8))).toBe(true);
    expect(isZero(new Uint8Array([0, 1]))).toBe(false);
  });

  it('turns OTLP/JSON hex ids into base64 only at id fields', () => {
    const json = { traceId: '0102', spanId: 'ffff', attributes: [{ key: 'traceId', value: { stringValue: 'abcd' } }], nested: { parent_span_id: '00ff', other: 'abcd' }, bad: { spanId: 'not-hex' } };
    expect(hexIdsToBase64(json)).toEqual({
      traceId: 'AQI=',
      spanId: '//8=',
      attributes: [{ key: 'traceId', value: { stringValue: 'abcd' } }],
      nested: { parent_span_id: 'AP8=', other: 'abcd' },
      bad: { spanId: 'not-hex' },
    });
  });
});
