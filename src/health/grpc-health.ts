import type { MessageInitShape } from '@bufbuild/protobuf';
import { AgentError } from '../errors/agent-error.js';
import { Health, HealthCheckResponse_ServingStatus as Serving, type HealthCheckResponseSchema } from '../gen/grpc/health/v1/health_pb.js';
import type { GrpcServer } from '../server/grpc.js';
import { isServing, type HealthRegistry } from './registry.js';

/**
 * The serving status of a health service name: `""` is the whole agent (SERVING only while ready),
 * a component name is that component, and a hosted gRPC service name follows the whole agent.
 * Undefined for names the agent does not know.
 */
function servingStatus(registry: HealthRegistry, server: GrpcServer, service: string): Serving | undefined {
  if (service === '' || server.serviceNames().includes(service)) return registry.readiness().ready ? Serving.SERVING : Serving.NOT_SERVING;
  const component = registry.component(service);
  if (!component) return undefined;
  return !registry.shuttingDown && isServing(component.state) ? Serving.SERVING : Serving.NOT_SERVING;
}

type Reply = MessageInitShape<typeof HealthCheckResponseSchema>;

/** Adds `grpc.health.v1.Health` (Check, List, Watch) backed by the health registry. */
export function addHealthService(server: GrpcServer, registry: HealthRegistry): void {
  server.addService(Health, {
    async check(req) {
      const s = servingStatus(registry, server, req.service);
      if (s === undefined) throw new AgentError('not_found', `unknown service ${JSON.stringify(req.service)}`);
      return { status: s };
    },
    async list() {
      const names = ['', ...server.serviceNames(), ...registry.components().map((c) => c.name)];
      return { statuses: Object.fromEntries(names.map((n) => [n, { status: servingStatus(registry, server, n) ?? Serving.SERVICE_UNKNOWN }])) };
    },
    async watch(req, send: (r: Reply) => Promise<void>, ctx) {
      // Sends the current status, then every change, until the client goes or the server stops.
      let last: Serving | undefined;
      const push = async (): Promise<void> => {
        const s = servingStatus(registry, server, req.service) ?? Serving.SERVICE_UNKNOWN;
        if (s === last) return;
        last = s;
        await send({ status: s });
      };
      let wake: (() => void) | undefined;
      const unsubscribe = registry.onChange(() => wake?.());
      const aborted = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      try {
        while (!ctx.signal.aborted) {
          const changed = new Promise<void>((resolve) => (wake = resolve));
          await push();
          await Promise.race([changed, aborted]);
        }
        if (registry.shuttingDown) await push();
      } finally {
        unsubscribe();
      }
    },
  });
}
