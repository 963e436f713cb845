import type { Metadata} from '@grpc/grpc-js';
import { ServerInterceptingCall, status, type ServerInterceptor, type ServerListener, type StatusObject } from '@grpc/grpc-js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Authenticator, Principal, RequiredScope } from '../auth/auth.js';
import { AgentError } from '../errors/agent-error.js';
import { GrpcError } from './errors.js';

/** Memory reserved for a request message before grpc-js reads it. */
export interface MessageReservation {
  /** Sets the reservation to the message's size once it is read (less than reserved: never refuses). */
  settle(bytes: number): void;
  /** Gives the memory back. Safe to call twice. */
  release(): void;
}

/**
 * Reserves memory for one request message of up to `bytes` before grpc-js reads it. When there is
 * no room now: undefined if `wait` (the call waits and asks again, up to admissionWaitMs), else an
 * `unavailable` AgentError (or UNAVAILABLE GrpcError), which refuses the call. Anything else thrown
 * refuses the call at once, as its status.
 */
export type Reserve = (bytes: number, wait?: boolean) => MessageReservation | undefined;

/** How the calls of one method are admitted: the token scope they need, and their memory. */
export interface MethodAdmission {
  scope: RequiredScope | undefined;
  reserve: Reserve | undefined;
}

/** What admission learnt of a call before its message was read, for the handler's context. */
export interface CallAdmission {
  principal: Principal | undefined;
  /** Gives back the reservation of a message the handler now holds under its own admission. */
  releaseMessage(message: Buffer): void;
}

/** Options for createAdmission. */
export interface AdmissionOptions {
  auth: Authenticator;
  /** server.grpc.max_recv_msg_size: what a message may take while it is read. */
  maxRecvMsgSize: number;
  /** server.grpc.message_timeout: a message must arrive whole within this of the call asking for it. */
  messageTimeoutMs: number;
  /** The admission of a method path, if any. */
  methodAdmission(path: string): MethodAdmission | undefined;
  /** The status sent for a refusal (logged as the server logs its errors). */
  toStatus(err: unknown, path: string): StatusObject;
  /** Registry for the refusal counter and the waiting gauge. */
  metrics: Registry;
}

/** The admission interceptor and what it learnt of each call. */
export interface Admission {
  interceptor: ServerInterceptor;
  /** The admission of the call whose headers are `metadata` (undefined for a call it did not see). */
  of(metadata: Metadata): CallAdmission | undefined;
  /** Calls waiting for memory to read their message. */
  readonly waiting: number;
}

/**
 * Longest a call waits for memory to read its message before UNAVAILABLE (bursts and a saturated
 * agent wait, floods are told to retry): half the message timeout, at most 5 s, well within an
 * exporter's usual 10 s deadline.
 */
export const admissionWaitMs = (messageTimeoutMs: number): number => Math.min(5_000, messageTimeoutMs / 2);
/** While calls wait, memory is tried again this often (the pipeline frees memory out of sight). */
const RETRY_MS = 5;

/** A grpc-js call whose reads wait for its gate. */
class GatedCall extends ServerInterceptingCall {
  constructor(
    next: ConstructorParameters<typeof ServerInterceptingCall>[0],
    responder: ConstructorParameters<typeof ServerInterceptingCall>[1],
    private readonly gate: CallGate,
  ) {
    super(next, responder);
  }

  override startRead(): void {
    this.gate.beforeRead(() => super.startRead());
  }
}

/** Calls waiting for memory, oldest first: each retry returns true once its call is settled (admitted, refused or gone). */
class WaitQueue {
  private readonly calls: Array<() => boolean> = [];
  private timer: NodeJS.Timeout | undefined;

  get size(): number {
    return this.calls.length;
  }

  add(retry: () => boolean): void {
    this.calls.push(retry);
    this.timer ??= setInterval(() => this.wake(), RETRY_MS).unref();
  }

  remove(retry: () => boolean): void {
    const i = this.calls.indexOf(retry);
    if (i >= 0) this.calls.splice(i, 1);
    this.stopWhenEmpty();
  }

  /** Lets waiting calls in, in order, while there is room. */
  wake(): void {
    for (let head = this.calls[0]; head; head = this.calls[0]) {
      if (!head()) break;
      // A call that ended while it was tried has already left the queue.
      if (this.calls[0] === head) this.calls.shift();
    }
    this.stopWhenEmpty();
  }

  private stopWhenEmpty(): void {
    if (this.calls.length > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** One call's admission: its token, its reservations, its message deadline. */
class CallGate {
  private reading: MessageReservation | undefined;
  /** Messages read and not yet taken by the handler, with their reservations (made on the first). */
  private held: Map<Buffer, MessageReservation> | undefined;
  private received = 0;
  /** The message deadline, made once and refreshed for each read (a cleared timer cannot be refreshed). */
  private messageTimer: NodeJS.Timeout | undefined;
  /** Whether a read asked for a message that has not arrived yet (what the deadline is for). */
  private awaiting = false;
  private waitTimer: NodeJS.Timeout | undefined;
  private ended = false;
  private waitingRetry: (() => boolean) | undefined;

  constructor(
    private readonly options: AdmissionOptions,
    private readonly queue: WaitQueue,
    private readonly path: string,
    private readonly requestStream: boolean,
    private readonly rule: MethodAdmission | undefined,
    private readonly send: (st: StatusObject) => void,
  ) {}

  /** Checks the token on the headers; returns the principal, or undefined after refusing the call. */
  authenticate(metadata: Metadata): { principal: Principal | undefined } | undefined {
    const scope = this.rule?.scope;
    if (!scope) return { principal: undefined };
    const authorization = metadata.get('authorization')[0];
    const result = this.options.auth.check(typeof authorization === 'string' ? authorization : undefined, scope);
    if (result.ok) return { principal: result.principal };
    this.refuse(new GrpcError(result.reason === 'forbidden' ? status.PERMISSION_DENIED : status.UNAUTHENTICATED, result.message));
    return undefined;
  }

  /** Runs `read` once the next message has room (at once without a reservation), or refuses the call. */
  beforeRead(read: () => void): void {
    if (this.ended) return;
    // A unary call's second read only waits for the end of the request: nothing more to reserve.
    const reserve = this.rule?.reserve;
    if (!reserve || this.reading || (!this.requestStream && this.received > 0)) return this.startReading(read);
    const attempt = (): boolean => {
      if (this.ended) return true;
      const wait = this.waitingRetry !== undefined;
      try {
        this.reading = reserve(this.options.maxRecvMsgSize, wait);
      } catch (err) {
        if (isUnavailable(err) && wait) return false;
        this.refuse(err);
        return true;
      }
      if (!this.reading) {
        if (wait) return false;
        this.refuse(new GrpcError(status.UNAVAILABLE, 'no memory for the request message now: retry later'));
        return true;
      }
      // Off the queue before reading: a message already read arrives at once and wakes the queue again.
      this.stopWaiting();
      this.startReading(read);
      return true;
    };
    // Without room now the call waits: a burst's reservations are settled within a turn. A stream
    // that already sent messages waits as long as a message may take, as refusing it now would
    // have its client send again what was already stored.
    this.waitingRetry = attempt;
    if (this.queue.size === 0 && attempt()) return;
    this.queue.add(attempt);
    const waitMs = this.received > 0 ? this.options.messageTimeoutMs : admissionWaitMs(this.options.messageTimeoutMs);
    this.waitTimer = setTimeout(() => {
      this.stopWaiting();
      attempt();
    }, waitMs);
  }

  /** A message arrived: its reservation is held at its size until the handler takes it. */
  messageArrived(message: Buffer): void {
    this.awaiting = false;
    this.received += 1;
    if (!this.reading) return;
    this.reading.settle(message.length);
    (this.held ??= new Map()).set(message, this.reading);
    this.reading = undefined;
    this.queue.wake();
  }

  halfClosed(): void {
    this.awaiting = false;
    if (!this.reading) return;
    this.dropReading();
    this.queue.wake();
  }

  releaseMessage(message: Buffer): void {
    const r = this.held?.get(message);
    if (!r) return;
    r.release();
    this.held?.delete(message);
    this.queue.wake();
  }

  /** The call ended (status sent, or cancelled): everything it holds is given back. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.messageTimer);
    this.stopWaiting();
    this.dropReading();
    for (const r of this.held?.values() ?? []) r.release();
    this.held = undefined;
    this.queue.wake();
  }

  private startReading(read: () => void): void {
    this.awaiting = true;
    if (this.messageTimer) this.messageTimer.refresh();
    else {
      this.messageTimer = setTimeout(() => {
        if (this.awaiting) this.refuse(new GrpcError(status.DEADLINE_EXCEEDED, `the request message did not arrive whole within server.grpc.message_timeout (${this.options.messageTimeoutMs} ms)`));
      }, this.options.messageTimeoutMs);
    }
    read();
  }

  private stopWaiting(): void {
    clearTimeout(this.waitTimer);
    if (!this.waitingRetry) return;
    this.queue.remove(this.waitingRetry);
    this.waitingRetry = undefined;
  }

  private dropReading(): void {
    this.reading?.release();
    this.reading = undefined;
  }

  private refuse(err: unknown): void {
    if (this.ended) return;
    this.end();
    this.send(this.options.toStatus(err, this.path));
  }
}

/** Whether a reservation's refusal is "no room now" (the call may wait) rather than final. */
const isUnavailable = (err: unknown): boolean => (err instanceof AgentError ? err.code === 'unavailable' : err instanceof GrpcError && err.code === status.UNAVAILABLE);

/**
 * Creates the gRPC admission interceptor. On a call's headers, before grpc-js reads its message, it
 * checks the token (methods with a scope) and reserves memory for each message (methods with
 * `reserve`); a call without room waits up to admissionWaitMs, its stream paused (HTTP/2 flow
 * control holds its data in the client), then gets UNAVAILABLE. A call whose message does not
 * arrive whole within messageTimeoutMs ends with DEADLINE_EXCEEDED. A refused call is answered at
 * once and its bytes are never held.
 */
export function createAdmission(options: AdmissionOptions): Admission {
  const queue = new WaitQueue();
  const refused = new Counter({
    name: 'heimdall_grpc_server_admission_refused_total',
    help: 'Calls refused by admission before their handler ran, by code (UNAUTHENTICATED, PERMISSION_DENIED; UNAVAILABLE: no memory to read the message; DEADLINE_EXCEEDED: the message not whole within server.grpc.message_timeout).',
    labelNames: ['grpc_code'] as const,
    registers: [options.metrics],
  });
  new Gauge({
    name: 'heimdall_grpc_server_admission_waiting',
    help: 'Calls waiting for memory to read their request message.',
    registers: [options.metrics],
    collect() {
      this.set(queue.size);
    },
  });
  const gateOptions: AdmissionOptions = {
    ...options,
    toStatus(err, path) {
      const st = options.toStatus(err, path);
      refused.inc({ grpc_code: status[st.code] });
      return st;
    },
  };
  const calls = new WeakMap<Metadata, CallAdmission>();
  const interceptor: ServerInterceptor = (definition, next) => {
    let gate: CallGate;
    const listener: ServerListener = {
      onReceiveMetadata: (metadata, metadataNext) => {
        const who = gate.authenticate(metadata);
        if (!who) return;
        calls.set(metadata, { principal: who.principal, releaseMessage: (message) => gate.releaseMessage(message) });
        metadataNext(metadata);
      },
      onReceiveMessage: (message: Buffer, messageNext) => {
        gate.messageArrived(message);
        messageNext(message);
      },
      onReceiveHalfClose: (halfCloseNext) => {
        gate.halfClosed();
        halfCloseNext();
      },
      onCancel: () => gate.end(),
    };
    const call = new GatedCall(
      next,
      {
        start: (startNext) => startNext(listener),
        sendStatus: (st, statusNext) => {
          gate.end();
          statusNext(st);
        },
      },
      (gate = new CallGate(gateOptions, queue, definition.path, definition.requestStream, options.methodAdmission(definition.path), (st) => next.sendStatus(st))),
    );
    return call;
  };
  return {
    interceptor,
    of: (metadata) => calls.get(metadata),
    get waiting() {
      return queue.size;
    },
  };
}
