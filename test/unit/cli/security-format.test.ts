import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { ACTION_HEADER, actionOutcome, actionRows, BLOCK_HEADER, blockRows, describeChange, MAX_TTL_SECONDS, modeOf, REASON_CHARS, stateOf, ttlSeconds } from '../../../src/cli/security-format.js';
import { ActionSchema, ActionState, BlockSchema, SecurityMode } from '../../../src/gen/heimdall/v1/security_pb.js';

const T0 = Date.parse('2026-12-02T10:00:00.000Z');
const at = (minutes: number) => timestampFromMs(T0 + minutes * 60_000);
const action = (init: Parameters<typeof create<typeof ActionSchema>>[1]) =>
  create(ActionSchema, { id: 'a-1', requestedBy: 'admin-a', createdAt: at(0), expiresAt: at(60), state: ActionState.PENDING, ...init });

describe('security CLI parsing', () => {
  it('modeOf takes the three mode names and names them when given another', () => {
    expect([modeOf('normal'), modeOf('elevated'), modeOf('lockdown')]).toEqual([SecurityMode.NORMAL, SecurityMode.ELEVATED, SecurityMode.LOCKDOWN]);
    for (const bad of ['Lockdown', 'unspecified', '']) expect(() => modeOf(bad)).toThrow(`mode: expected one of normal, elevated, lockdown, got ${JSON.stringify(bad)}`);
  });

  it('stateOf takes the four action states a filter can name', () => {
    expect(['pending', 'executed', 'rejected', 'expired'].map(stateOf)).toEqual([ActionState.PENDING, ActionState.EXECUTED, ActionState.REJECTED, ActionState.EXPIRED]);
    expect(() => stateOf('unspecified')).toThrow('--status: expected one of pending, executed, rejected, expired, got "unspecified"');
  });

  it('ttlSeconds rounds up to whole seconds and holds the bounds of the API\'s uint32 of seconds', () => {
    expect([ttlSeconds('1s'), ttlSeconds('1500ms'), ttlSeconds('30m'), ttlSeconds('7d')]).toEqual([1, 2, 1800, 604_800]);
    expect(ttlSeconds(`${MAX_TTL_SECONDS}s`)).toBe(MAX_TTL_SECONDS);
    for (const bad of ['999ms', '0', `${MAX_TTL_SECONDS + 1}s`, 'forever', '-5m']) expect(() => ttlSeconds(bad)).toThrow(`--ttl: expected a duration from 1s to ${MAX_TTL_SECONDS}s`);
  });
});

describe('security CLI output', () => {
  it('describeChange says what each kind of action does', () => {
    expect(describeChange(action({ change: { case: 'setMode', value: { mode: SecurityMode.LOCKDOWN } } }))).toBe('set mode lockdown');
    expect(describeChange(action({ change: { case: 'block', value: { entity: 'remote_address=203.0.113.7', durationSeconds: 5400 } } }))).toBe('block remote_address=203.0.113.7 for 90m');
    expect(describeChange(action({ change: { case: 'block', value: { entity: 'user=x', durationSeconds: 0 } } }))).toBe('block user=x until unblocked');
    expect(describeChange(action({ change: { case: 'unblock', value: { entity: 'user=x' } } }))).toBe('unblock user=x');
  });

  it('a pending action names its id, who may not approve it, and the command that approves it', () => {
    expect(actionOutcome(action({ change: { case: 'setMode', value: { mode: SecurityMode.ELEVATED } } }))).toEqual([
      'action a-1 is pending approval: set mode elevated (requested by admin-a; expires 2026-12-02T11:00:00.000Z)',
      'A second admin (not admin-a) must approve it: heimdall security approve a-1',
    ]);
  });

  it('a decided action names who decided it and why', () => {
    const decided = (state: ActionState, decidedBy: string, reason = '') => actionOutcome(action({ change: { case: 'unblock', value: { entity: 'user=x' } }, state, decidedBy, decidedAt: at(5), reason }));
    expect(decided(ActionState.EXECUTED, 'admin-b')).toEqual(['action a-1 executed: unblock user=x (requested by admin-a, approved by admin-b)']);
    expect(decided(ActionState.REJECTED, 'admin-b', 'keep it')).toEqual(['action a-1 rejected: unblock user=x (requested by admin-a, rejected by admin-b): keep it']);
    expect(decided(ActionState.EXPIRED, 'heimdall')).toEqual(['action a-1 expired: unblock user=x (requested by admin-a, nobody decided in time)']);
  });

  it('action rows show the expiry of a pending action, the decision time of a decided one, and cut long reasons', () => {
    const rows = actionRows([
      action({ change: { case: 'setMode', value: { mode: SecurityMode.NORMAL } }, reason: 'r'.repeat(100) }),
      action({ id: 'a-2', change: { case: 'setMode', value: { mode: SecurityMode.NORMAL } }, state: ActionState.EXECUTED, decidedBy: 'admin-b', decidedAt: at(5) }),
    ]);
    expect(rows.every((r) => r.length === ACTION_HEADER.length)).toBe(true);
    expect(rows[0]).toEqual(['a-1', 'pending', 'set mode normal', 'admin-a', '-', '2026-12-02T10:00:00.000Z', 'expires 2026-12-02T11:00:00.000Z', `${'r'.repeat(REASON_CHARS - 1)}…`]);
    expect(rows[1]).toEqual(['a-2', 'executed', 'set mode normal', 'admin-a', 'admin-b', '2026-12-02T10:00:00.000Z', '2026-12-02T10:05:00.000Z', '']);
  });

  it('block rows say never for a block held until unblocked', () => {
    const rows = blockRows([
      create(BlockSchema, { entity: 'user=x', reason: 'scanner', createdAt: at(0), requestedBy: 'admin-a', approvedBy: 'admin-b' }),
      create(BlockSchema, { entity: 'user=y', createdAt: at(0), expiresAt: at(30), requestedBy: 'admin-a', approvedBy: 'admin-b' }),
    ]);
    expect(rows.every((r) => r.length === BLOCK_HEADER.length)).toBe(true);
    expect(rows.map((r) => r[1])).toEqual(['never', '2026-12-02T10:30:00.000Z']);
    expect(rows[0]).toEqual(['user=x', 'never', 'admin-a', 'admin-b', '2026-12-02T10:00:00.000Z', 'scanner']);
  });
});
