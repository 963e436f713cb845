import { describe, expect, it } from 'vitest';
import { chdbAbsence, chdbUnavailableMessage } from '../../../src/storage/chdb-unavailable.js';

const SERVER = 'Or run with a ClickHouse server instead: set storage.mode: server and storage.clickhouse.url (for example "http://clickhouse:8123") in the config file.';

describe('chdbUnavailableMessage', () => {
  it('names the platform and the build a macOS or arm64 user must add, with the version chdb expects', () => {
    expect(chdbUnavailableMessage('darwin-arm64', { kind: 'build', version: '26.7.3-stable.1' })).toBe(
      'the embedded store needs chdb\'s native build for darwin-arm64 (npm package "@chdb/lib-darwin-arm64"), and it is not installed ' +
        "(npm install adds only the builds package-lock.json lists: linux-x64's). Install it with `npm install --no-save @chdb/lib-darwin-arm64@26.7.3-stable.1`. " +
        SERVER,
    );
    expect(chdbUnavailableMessage('linux-arm64', { kind: 'build', version: undefined })).toContain('`npm install --no-save @chdb/lib-linux-arm64-gnu`.');
  });

  it('says chdb has no build for a platform it does not support', () => {
    expect(chdbUnavailableMessage('win32-x64', { kind: 'package' })).toBe(
      "the embedded store needs chdb's native build, and chdb has none for win32-x64 (it has builds for linux-x64, linux-arm64, darwin-x64, darwin-arm64; linux with glibc). " + SERVER,
    );
  });

  it('says to install chdb when the package is missing, and passes on why a present chdb does not load', () => {
    expect(chdbUnavailableMessage('darwin-x64', { kind: 'package' })).toBe(
      'the embedded store needs chdb (npm package "chdb", with its native build for darwin-x64), and it is not installed. Install it with `npm install chdb`. ' + SERVER,
    );
    expect(chdbUnavailableMessage('linux-x64', { kind: 'load', detail: 'failed to load native binding' })).toBe('the embedded store cannot load chdb: failed to load native binding. ' + SERVER);
  });
});

describe('chdbAbsence', () => {
  it('reads a failure of an installed chdb as a missing build only when chdb says so', () => {
    const unsupported = Object.assign(new Error('chdb: no native binding for darwin-arm64'), { name: 'ChdbPlatformUnsupportedError' });
    expect(chdbAbsence(unsupported).kind).toBe('build');
    expect(chdbAbsence(new Error('boom'))).toEqual({ kind: 'load', detail: 'boom' });
  });
});
