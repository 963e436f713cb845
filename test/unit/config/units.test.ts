import { describe, expect, it } from 'vitest';
import { splitHostPort } from '../../../src/config/host-port.js';
import { parseDuration, parseSize } from '../../../src/config/units.js';
import { substituteEnv } from '../../../src/config/substitute.js';

describe('units', () => {
  it('parses durations into milliseconds', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5s')).toBe(5_000);
    expect(parseDuration('1.5m')).toBe(90_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('90d')).toBe(7_776_000_000);
    expect(parseDuration('1w')).toBe(604_800_000);
    expect(parseDuration('0')).toBe(0);
    for (const bad of ['', '5', '5 parsecs', '-1s', 's', '1y']) expect(parseDuration(bad)).toBeUndefined();
  });

  it('parses sizes into bytes', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize('64KiB')).toBe(65_536);
    expect(parseSize('4MiB')).toBe(4_194_304);
    expect(parseSize('1GB')).toBe(1e9);
    expect(parseSize('20mib')).toBe(20 * 1024 * 1024);
    for (const bad of ['', 'MiB', '4 MiBs', '-1']) expect(parseSize(bad)).toBeUndefined();
  });

  it('splits host:port, including bracketed IPv6', () => {
    expect(splitHostPort('127.0.0.1:4317')).toEqual({ host: '127.0.0.1', port: 4317 });
    expect(splitHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(splitHostPort('localhost:9464')).toEqual({ host: 'localhost', port: 9464 });
    for (const bad of ['4317', 'host:', ':80', 'a:b:c', 'host:70000', '::1:80']) expect(splitHostPort(bad)).toBeUndefined();
  });

  it('substitutes only in string values and keeps non-reference text', () => {
    expect(substituteEnv({ a: 'x-${A}-y', n: 3, list: ['${A}', true] }, { A: 'v' })).toEqual({ a: 'x-v-y', n: 3, list: ['v', true] });
    expect(substituteEnv({ port: '${P:-4317}' }, {})).toEqual({ port: '4317' });
    expect(substituteEnv({ port: '${P:-4317}' }, { P: '' })).toEqual({ port: '4317' });
    expect(substituteEnv({ pw: '${PW}' }, { PW: '' })).toEqual({ pw: '' });
    expect(substituteEnv({ s: '${S}' }, { S: 'a: b\nc: d' })).toEqual({ s: 'a: b\nc: d' });
  });
});
