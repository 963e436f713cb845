import { Metadata, status, type ServerInterceptingCallInterface, type StatusObject } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Authenticator } from '../../../src/auth/auth.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { createAdmission, type MessageReservation } from '../../../src/server/grpc-admission.js';
import { toStatus } from '../../../src/server/grpc-calls.js';
import { silentLogger } from '../../support/temp.js';
import { sleep } from '../../support/wait.js';

/**
 * A pool of memory for reservations: `free` bytes; counts what is reserved, how many reservations
 * live, and the refusals thrown (without room: undefined to a caller that waits, thrown otherwise).
 */
function pool(free: number) {
  const p = {
    free,
    live: 0,
    refusals: 0,
    reserve(bytes: number, wait = false): MessageReservation | undefined {
      if (bytes > p.free && wait) return undefined;
      if (bytes > p.free) {
        p.refusals += 1;
        throw new AgentError('unavailable', 'no room', 1_000);
      }
      p.free -= bytes;
      p.live += 1;
      let held = bytes;
      let released = false;
      return {
        settle(n) {
          p.free += held - n;
          held = n;
        },
        release() {
          if (released) return;
          released = true;
          p.free += held;
          p.live -= 1;
        },
      };
    },
  };
  return p;
}

/** The grpc-js call under the interceptor: messages it already holds are handed over on a read. */
function baseCall() {
  const base = {
    listener: undefined as Parameters<ServerInterceptingCallInterface['start']>[0] | undefined,
    buffered: [] as Buffer[],
    reads: 0,
    statuses: [] as StatusObject[],
    start(l: Parameters<ServerInterceptingCallInterface['start']>[0]) {
      base.listener = l;
      l.onReceiveMetadata(new Metadata());
    },
    startRead() {
      base.reads += 1;
      const m = base.buffered.shift();
      if (m) base.listener?.onReceiveMessage(m);
    },
    sendStatus(s: StatusObject) {
      base.statuses.push(s);
    },
    sendMetadata() {},
    sendMessage() {},
    getPeer: () => 'peer',
    getDeadline: () => Infinity,
    getHost: () => 'host',
  };
  return base;
}

function setup(free: number, messageTimeoutMs = 1_000) {
  const memory = pool(free);
  const admission = createAdmission({
    auth: { check: () => ({ ok: true, principal: undefined }) } as unknown as Authenticator,
    maxRecvMsgSize: 100,
    messageTimeoutMs,
    methodAdmission: () => ({ scope: undefined, reserve: (bytes, wait) => memory.reserve(bytes, wait) }),
    toStatus: (err, path) => toStatus(err, silentLogger(), path),
    metrics: new Registry(),
  });
  const open = (requestStream: boolean) => {
    const base = baseCall();
    const call = admission.interceptor({ path: '/svc/Method', requestStream, responseStream: false } as never, base as never);
    const got: Buffer[] = [];
    call.start({ onReceiveMetadata: () => undefined, onReceiveMessage: (m: Buffer) => got.push(m), onReceiveHalfClose: () => undefined, onCancel: () => undefined });
    return { base, call, got };
  };
  return { memory, admission, open };
}

describe('gRPC admission', () => {
  it('a stream waiting for room, whose next messages grpc-js already holds, reads one message per read when room comes', async () => {
    const { memory, admission, open } = setup(0);
    const { base, call, got } = open(true);
    base.buffered.push(Buffer.alloc(10, 1), Buffer.alloc(10, 2));
    call.startRead();
    expect(admission.waiting).toBe(1);
    memory.free = 100;
    await sleep(30);
    expect(base.statuses).toEqual([]);
    expect(got).toHaveLength(1);
    expect(base.reads).toBe(1);
    expect(memory.live).toBe(1);
    expect(admission.waiting).toBe(0);
  });

  it('a call without room waits up to half the message timeout, then is refused UNAVAILABLE with nothing held', async () => {
    const { memory, admission, open } = setup(0, 200);
    const { base, call } = open(false);
    call.startRead();
    await sleep(50);
    expect(base.statuses).toEqual([]);
    expect(base.reads).toBe(0);
    await sleep(100);
    expect(base.statuses.map((s) => s.code)).toEqual([status.UNAVAILABLE]);
    expect(base.statuses[0]?.details).toContain('no room');
    expect(admission.waiting).toBe(0);
    expect(memory.live).toBe(0);
    // Asked every few milliseconds while it waited, refused (thrown) once: when the wait was over.
    expect(memory.refusals).toBe(1);
  });

  it('calls waiting for room are let in in order, as room is given back', async () => {
    const { memory, open } = setup(100);
    const first = open(false);
    first.call.startRead(); // reserved, its message not here yet
    const second = open(false);
    second.call.startRead();
    const third = open(false);
    third.call.startRead();
    expect([first.base.reads, second.base.reads, third.base.reads]).toEqual([1, 0, 0]);
    first.base.listener?.onReceiveMessage(Buffer.alloc(100)); // settled at its full size: still no room
    first.call.sendStatus({ code: status.OK, details: '', metadata: new Metadata() }); // the call ends: room
    expect([second.base.reads, third.base.reads]).toEqual([1, 0]);
    expect(memory.live).toBe(1);
  });

  it('a message not whole within the message timeout ends the call with DEADLINE_EXCEEDED and gives its reservation back', async () => {
    const { memory, open } = setup(100, 100);
    const { base, call } = open(false);
    call.startRead();
    expect(memory.live).toBe(1);
    await sleep(150);
    expect(base.statuses.map((s) => s.code)).toEqual([status.DEADLINE_EXCEEDED]);
    expect(memory.live).toBe(0);
  });

  it('a stream whose messages arrive within the timeout is not ended by a deadline of an earlier read', async () => {
    const { open } = setup(1_000, 100);
    const { base, call, got } = open(true);
    for (let i = 0; i < 4; i++) {
      call.startRead();
      await sleep(60);
      base.listener?.onReceiveMessage(Buffer.alloc(5, i));
    }
    expect(got).toHaveLength(4);
    expect(base.statuses).toEqual([]);
  });
});
