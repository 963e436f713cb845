import { describe, expect, it } from 'vitest';
import { AgentError } from '../../../../src/errors/agent-error.js';
import { createPendingCalls } from '../../../../src/ratelimit/worker/pending.js';

describe('pending calls', () => {
  it('correlates answers by id, refuses past max with resource_exhausted, and rejects all when the other side is gone', async () => {
    const calls = createPendingCalls<string>(2, 'checks');
    const a = calls.open();
    const b = calls.open();
    expect(a.id).not.toBe(b.id);
    expect(() => calls.open()).toThrow(expect.objectContaining({ code: 'resource_exhausted', message: '2 checks in flight (the most at once); retry later' }) as Error);
    calls.resolve(b.id, 'b');
    calls.resolve(a.id, 'a');
    expect([await a.answer, await b.answer]).toEqual(['a', 'b']);
    expect(calls.size).toBe(0);
    const c = calls.open();
    const d = calls.open();
    calls.reject(c.id, new Error('bad request'));
    calls.rejectAll(new AgentError('unavailable', 'gone', 1_000));
    await expect(c.answer).rejects.toThrow('bad request');
    await expect(d.answer).rejects.toThrow('gone');
    // A late answer for a call already rejected changes nothing.
    calls.resolve(d.id, 'late');
    expect(calls.size).toBe(0);
  });
});
