import { describe, expect, it } from 'vitest';
import { threadEntry } from '../../../../src/ratelimit/worker/thread-url.js';

describe('worker thread entry', () => {
  it('is the built .js beside the module from dist/, the .ts source with type transformation and the .js-to-.ts hook from sources', () => {
    expect(threadEntry('entry', 'file:///app/dist/ratelimit/worker/thread-url.js')).toEqual({ url: new URL('file:///app/dist/ratelimit/worker/entry.js'), execArgv: [] });
    const fromSources = threadEntry('entry', 'file:///app/src/ratelimit/worker/thread-url.ts');
    expect(fromSources.url.href).toBe('file:///app/src/ratelimit/worker/entry.ts');
    expect(fromSources.execArgv).toEqual(['--experimental-transform-types', '--disable-warning=ExperimentalWarning', '--import', 'file:///app/src/ratelimit/worker/ts-sources.mjs']);
  });
});
