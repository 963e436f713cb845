/** The action state machine alone, on a fake clock: pending, then executed by a second admin, rejected, or expired after its TTL. */
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../../src/errors/agent-error.js';
import { ActionState, SecurityMode } from '../../../src/gen/heimdall/v1/security_pb.js';
import { createActionBook, type ActionChange } from '../../../src/ratelimit/security-actions.js';

const BLOCK: ActionChange = { kind: 'block', entity: 'user=mallory', reason: 'scanner', durationSeconds: 0 };

function book(ttlMs = 60_000) {
  const clock = { t: 1_700_000_000_000 };
  return { clock, book: createActionBook({ ttlMs, now: () => clock.t }) };
}

describe('the action book', () => {
  it('proposes a pending action expiring one TTL later, and keeps it only once recorded', () => {
    const { clock, book: b } = book();
    const a = b.propose(BLOCK, 'probing', 'admin-a');
    expect(a).toMatchObject({ change: BLOCK, state: ActionState.PENDING, reason: 'probing', requestedBy: 'admin-a', decidedBy: '', createdAt: clock.t, decidedAt: 0, expiresAt: clock.t + 60_000 });
    expect(b.all()).toEqual([]);
    expect(() => b.approve(a.id, 'admin-b')).toThrow(new AgentError('not_found', `id: no action ${JSON.stringify(a.id)}`));
    b.record(a);
    expect(b.list()).toEqual([a]);
  });

  it('executes on the approval of a second admin, never of the requester', () => {
    const { clock, book: b } = book();
    const a = b.propose(BLOCK, '', 'admin-a');
    b.record(a);
    expect(() => b.approve(a.id, 'admin-a')).toThrow(new AgentError('permission_denied', `action ${a.id} must be approved by an admin other than the one who requested it (admin-a)`));
    clock.t += 5_000;
    const executed = b.approve(a.id, 'admin-b');
    expect(executed).toMatchObject({ state: ActionState.EXECUTED, decidedBy: 'admin-b', decidedAt: clock.t });
    // A transition is not kept until recorded: the action is still pending.
    expect(b.list(ActionState.PENDING)).toEqual([a]);
    b.record(executed);
    expect(() => b.approve(a.id, 'admin-b')).toThrow(new AgentError('failed_precondition', `action ${a.id} is executed, not pending`));
    expect(() => b.reject(a.id, 'admin-b', 'no')).toThrow(new AgentError('failed_precondition', `action ${a.id} is executed, not pending`));
  });

  it("rejects with the decider's reason, or keeps the request's when none is given", () => {
    const { book: b } = book();
    const a = b.propose({ kind: 'mode', mode: SecurityMode.LOCKDOWN }, 'incident', 'admin-a');
    b.record(a);
    expect(b.reject(a.id, 'admin-a', '')).toMatchObject({ state: ActionState.REJECTED, decidedBy: 'admin-a', reason: 'incident' });
    expect(b.reject(a.id, 'admin-b', 'not now')).toMatchObject({ state: ActionState.REJECTED, decidedBy: 'admin-b', reason: 'not now' });
  });

  it('expires pending actions once their TTL has passed, decided by heimdall', () => {
    const { clock, book: b } = book(1_000);
    const first = b.propose(BLOCK, '', 'admin-a');
    b.record(first);
    clock.t += 500;
    const second = b.propose({ kind: 'unblock', entity: 'user=mallory' }, '', 'admin-a');
    b.record(second);
    clock.t += 499;
    expect(b.expired()).toEqual([]);
    clock.t += 1;
    expect(b.expired()).toEqual([{ ...first, state: ActionState.EXPIRED, decidedBy: 'heimdall', decidedAt: clock.t }]);
    b.record(b.expired()[0]!);
    clock.t += 500;
    expect(b.expired().map((a) => a.id)).toEqual([second.id]);
  });

  it('keeps at most maxDecided decided actions, dropping the oldest; pending ones are always kept', () => {
    const clock = { t: 1_700_000_000_000 };
    const b = createActionBook({ ttlMs: 60_000, now: () => clock.t, maxDecided: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const a = b.propose(BLOCK, '', 'a');
      b.record(a);
      ids.push(a.id);
      clock.t += 1_000;
    }
    for (const id of ids.slice(0, 3)) b.record(b.reject(id, 'b', ''));
    expect(b.list().map((a) => [a.id, a.state])).toEqual([
      [ids[3], ActionState.PENDING],
      [ids[2], ActionState.REJECTED],
      [ids[1], ActionState.REJECTED],
    ]);
  });

  it('lists by state, newest first', () => {
    const { clock, book: b } = book();
    const ids: string[] = [];
    for (const by of ['a', 'b', 'c']) {
      const a = b.propose(BLOCK, '', by);
      b.record(a);
      ids.push(a.id);
      clock.t += 1_000;
    }
    b.record(b.reject(ids[1]!, 'a', ''));
    expect(b.list().map((a) => a.id)).toEqual([...ids].reverse());
    expect(b.list(ActionState.PENDING).map((a) => a.id)).toEqual([ids[2], ids[0]]);
    expect(b.list(ActionState.REJECTED).map((a) => a.id)).toEqual([ids[1]]);
    expect(b.all().map((a) => a.id)).toEqual(ids);
  });
});
