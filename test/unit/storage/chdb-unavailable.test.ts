import { describe, expect, it } from 'vitest';
import { chdbAbsence, chdbUnavailableMessage, preloadedAllocator } from '../../../src/storage/chdb-unavailable.js';

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

describe('preloadedAllocator', () => {
  it('finds jemalloc, tcmalloc or mimalloc among LD_PRELOAD libraries (space or colon separated), nothing else', () => {
    expect(preloadedAllocator({ LD_PRELOAD: '/usr/local/lib/libjemalloc.so.2' })).toBe('/usr/local/lib/libjemalloc.so.2');
    expect(preloadedAllocator({ LD_PRELOAD: '/opt/libfoo.so:/usr/lib/libtcmalloc_minimal.so.4' })).toBe('/usr/lib/libtcmalloc_minimal.so.4');
    expect(preloadedAllocator({ LD_PRELOAD: 'libfoo.so libmimalloc.so' })).toBe('libmimalloc.so');
    expect(preloadedAllocator({ LD_PRELOAD: '/opt/libjemalloc-wrapper-tools.so' })).toBeUndefined();
    expect(preloadedAllocator({ LD_PRELOAD: '' })).toBeUndefined();
    expect(preloadedAllocator({})).toBeUndefined();
  });
  it('says why the embedded store refuses it and what to do', () => {
    expect(chdbUnavailableMessage('linux-x64', { kind: 'allocator', preload: '/usr/local/lib/libjemalloc.so.2' })).toBe(
      'the embedded store cannot run with /usr/local/lib/libjemalloc.so.2 preloaded (LD_PRELOAD): chdb frees memory with glibc\'s malloc, so the process would abort ("free(): invalid pointer"). ' +
        'Unset LD_PRELOAD to use the embedded store (jemalloc is for server storage). ' +
        SERVER,
    );
  });
});
