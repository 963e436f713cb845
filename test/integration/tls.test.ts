import { request } from 'node:https';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as Serving } from '../../src/gen/grpc/health/v1/health_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { haveBinary } from '../support/binaries.js';
import { makeCerts, type TestCerts } from '../support/certs.js';
import { testClient } from '../support/grpc-client.js';
import { tempDir } from '../support/temp.js';

function httpsGet(url: string, certs: TestCerts, withClientCert: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: certs.read(certs.caFile), ...(withClientCert ? { cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey) } : {}) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe.runIf(haveBinary('openssl'))('TLS and mTLS listeners', () => {
  const dir = tempDir();
  let certs: TestCerts;
  let t: TestAgent;
  beforeAll(async () => {
    certs = makeCerts(dir.path);
    const tls = { cert_file: certs.serverCert, key_file: certs.serverKey, client_ca_file: certs.caFile };
    t = await startTestAgent({ server: { grpc: { tls }, admin: { tls }, otlp_http: { tls: { cert_file: certs.serverCert, key_file: certs.serverKey } } } });
  });
  afterAll(async () => {
    await t.stop();
    dir.cleanup();
  });

  it('gRPC: a client with a certificate from the CA is served; one without is refused', async () => {
    const ca = certs.read(certs.caFile);
    const good = testClient(Health, `localhost:${t.agent.grpc.port}`, credentials.createSsl(ca, certs.read(certs.clientKey), certs.read(certs.clientCert)));
    expect((await good.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' })).reply.status).toBe(Serving.SERVING);
    good.close();
    const anonymous = testClient(Health, `localhost:${t.agent.grpc.port}`, credentials.createSsl(ca));
    const err = (await anonymous.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' }, {}).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(status.UNAVAILABLE);
    anonymous.close();
    const plaintext = testClient(Health, `127.0.0.1:${t.agent.grpc.port}`);
    const perr = (await plaintext.unary('Check', HealthCheckRequestSchema, HealthCheckResponseSchema, { service: '' }).catch((e: unknown) => e)) as ServiceError;
    expect(perr.code).toBe(status.UNAVAILABLE);
    plaintext.close();
  });

  it('HTTPS admin with mTLS: client certificate required', async () => {
    expect(await httpsGet(`https://127.0.0.1:${t.agent.admin.port}/readyz`, certs, true)).toBe(200);
    await expect(httpsGet(`https://127.0.0.1:${t.agent.admin.port}/readyz`, certs, false)).rejects.toThrow();
  });

  it('HTTPS without client CA: server-authenticated TLS only', async () => {
    expect(await httpsGet(`https://127.0.0.1:${t.agent.otlpHttp.port}/nothing-here`, certs, false)).toBe(404);
  });
});
