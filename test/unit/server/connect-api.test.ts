/**
 * The Connect API over a real admin listener and authenticator, with services of the test's own:
 * what only a hand-made handler shows (a stream ended by a tokens reload or by shutdown, a memory
 * reservation refused and given back, a handler's bug, a raw reply, services of other packages).
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator, type Authenticator } from '../../../src/auth/auth.js';
import { validateConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { RetryInfoSchema } from '../../../src/gen/google/rpc/error_details_pb.js';
import { Health } from '../../../src/gen/grpc/health/v1/health_pb.js';
import { EventService, WriteEventsResponseSchema } from '../../../src/gen/heimdall/v1/events_pb.js';
import { JobService, JobStatus } from '../../../src/gen/heimdall/v1/jobs_pb.js';
import { SystemService } from '../../../src/gen/heimdall/v1/system_pb.js';
import { createHealthRegistry } from '../../../src/health/registry.js';
import { RetryableError } from '../../../src/ingest/pipeline/errors.js';
import { addConnectApi, type ConnectApi } from '../../../src/server/connect-api.js';
import type { CallContext, ServiceImpl } from '../../../src/server/grpc-service.js';
import { createHttpServer, type HttpServer } from '../../../src/server/http.js';
import { createServiceRegistry } from '../../../src/server/service-registry.js';
import { silentLogger } from '../../support/temp.js';
import { until } from '../../support/wait.js';

const ADMIN = 'admin-token-000000000001';
const INGEST = 'ingest-token-00000000001';
const authConfig = (tokens: Array<{ name: string; token: string; scopes: string[] }>): Config['auth'] => validateConfig({ auth: { enabled: true, tokens } }).auth;
const ALL_TOKENS = [
  { name: 'admin', token: ADMIN, scopes: ['admin'] },
  { name: 'ingest', token: INGEST, scopes: ['ingest'] },
];

describe('Connect API', () => {
  let http: HttpServer;
  let auth: Authenticator;
  let api: ConnectApi;
  /** The contexts the stream handler saw, in order. */
  const streams: CallContext[] = [];
  let reservations = { taken: 0, released: 0, full: false };
  let systemThrows: Error | undefined;

  beforeAll(async () => {
    const metrics = new Registry();
    const health = createHealthRegistry({ metrics });
    const logger = silentLogger();
    auth = createAuthenticator(authConfig(ALL_TOKENS), { logger, health, metrics });
    http = createHttpServer({ name: 'admin', config: validateConfig({ server: { admin: { address: '127.0.0.1:0' } } }).server.admin, logger, metrics, health, auth });
    const services = createServiceRegistry();
    const watchJob: ServiceImpl<typeof JobService.method>['watchJob'] = async (req, send, ctx) => {
      streams.push(ctx);
      await send({ job: { id: req.id, status: JobStatus.RUNNING, progress: 1 } });
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
    };
    services.addService(JobService, { watchJob } as never, 'admin');
    services.addService(
      EventService,
      {
        writeEvents: {
          async raw(bytes: Buffer, ctx: CallContext) {
            ctx.releaseMessage(bytes);
            return toBinary(WriteEventsResponseSchema, create(WriteEventsResponseSchema, { accepted: bytes.length, ids: [ctx.correlationId] }));
          },
        },
        streamEvents: { rawStream: () => Promise.resolve({}) },
      },
      'ingest',
      {
        reserve: () => {
          if (reservations.full) throw new RetryableError('memory is full', 1_500);
          reservations.taken += 1;
          let released = false;
          return { settle: () => undefined, release: () => void (released || ((released = true), (reservations.released += 1))) };
        },
      },
    );
    services.addService(SystemService, {
      getStatus() {
        if (systemThrows) throw systemThrows;
        return Promise.resolve({ version: 'v-test' });
      },
    });
    services.addService(Health, { check: () => Promise.resolve({}), watch: () => Promise.resolve(), list: () => Promise.resolve({}) });
    api = addConnectApi({ http, services, auth, logger });
    await http.start();
  });
  afterAll(async () => {
    await api.shutdown();
    await http.shutdown();
  });

  const transport = (token: string): Transport =>
    createConnectTransport({ baseUrl: `http://127.0.0.1:${http.port}`, httpVersion: '1.1', interceptors: [(next) => (req) => (req.header.set('authorization', `Bearer ${token}`), next(req))] });

  /** Opens WatchJob and reads its first message; the rest of the stream settles in `rest`. */
  async function openStream(): Promise<{ rest: Promise<ConnectError | undefined>; ctx: CallContext }> {
    const before = streams.length;
    const it = createClient(JobService, transport(ADMIN)).watchJob({ id: 'j1' })[Symbol.asyncIterator]();
    expect((await it.next()).value?.job?.progress).toBe(1);
    await until(() => streams.length > before, 10_000, 'the handler to start');
    const rest = (async () => {
      try {
        while (!(await it.next()).done);
        return undefined;
      } catch (err) {
        return ConnectError.from(err);
      }
    })();
    return { rest, ctx: streams[before] as CallContext };
  }

  it('ends a response stream whose token a tokens reload revoked, as gRPC does, and aborts its handler', async () => {
    const { rest, ctx } = await openStream();
    auth.reload(authConfig(ALL_TOKENS.filter((t) => t.token !== ADMIN)));
    const err = await rest;
    expect(err?.code).toBe(Code.Unauthenticated);
    expect(err?.rawMessage).toMatch(/\(the tokens were reloaded while this stream was open\)$/);
    await until(() => ctx.signal.aborted, 10_000, 'the handler to be aborted');
    auth.reload(authConfig(ALL_TOKENS));
  });

  it('refuses a call at once when memory for its message cannot be reserved (unavailable, with RetryInfo), and gives reservations back', async () => {
    const events = createClient(EventService, transport(INGEST));
    const reply = await events.writeEvents({ events: [{ eventType: 'x', source: 'y' }] }, { headers: { 'x-correlation-id': 'unit-1' } });
    expect(reply.accepted).toBeGreaterThan(0);
    expect(reply.ids).toEqual(['unit-1']);
    expect(reservations).toMatchObject({ taken: 1, released: 1 });
    reservations.full = true;
    const err = ConnectError.from(await events.writeEvents({}).catch((e: unknown) => e));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe('memory is full');
    expect(err.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(1n);
    reservations = { taken: 0, released: 0, full: false };
    // A message refused for its size still gives its reservation back.
    const big = await fetch(`http://127.0.0.1:${http.port}/heimdall.v1.EventService/WriteEvents`, {
      method: 'POST',
      body: new Uint8Array(2 << 20),
      headers: { authorization: `Bearer ${INGEST}`, 'content-type': 'application/proto' },
    });
    expect(big.status).toBe(429);
    await until(() => reservations.released === 1, 10_000, 'the reservation to be given back');
  });

  it('answers a handler bug with internal and no detail; services of other packages are not served', async () => {
    systemThrows = new Error('a bug with a secret inside');
    const err = ConnectError.from(await createClient(SystemService, transport(ADMIN)).getStatus({}).catch((e: unknown) => e));
    systemThrows = undefined;
    expect([err.code, err.rawMessage]).toEqual([Code.Internal, 'internal error']);
    expect((await createClient(SystemService, transport(ADMIN)).getStatus({})).version).toBe('v-test');
    const health = await fetch(`http://127.0.0.1:${http.port}/grpc.health.v1.Health/Check`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(health.status).toBe(404);
  });

  it('ends the response streams open at shutdown', async () => {
    const { rest, ctx } = await openStream();
    await api.shutdown();
    const err = await rest;
    expect(err === undefined || err.code === Code.Unavailable).toBe(true);
    await until(() => ctx.signal.aborted, 10_000, 'the handler to be aborted');
  });
});
