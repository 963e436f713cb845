import type { DescFile } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { RequiredScope } from '../auth/auth.js';
import type { Reserve } from './grpc-admission.js';
import type { ServiceImpl } from './grpc-service.js';

/** How a service's calls are admitted, beyond its scope. */
export interface ServiceOptions {
  /**
   * Reserves memory for one request message of up to the transport's message bound before the
   * transport reads it (see createAdmission for gRPC; the Connect API reserves its body bound). Once
   * read, the reservation is settled to the message's size, and given back once the handler took
   * the message (CallContext.releaseMessage) or the call ended.
   */
  reserve?: Reserve;
  /** Whether calls get a server span (default true). */
  traced?: boolean;
}

/** A service as it was added: its descriptor, implementation, scope and admission. */
export interface RegisteredService {
  readonly service: GenService<GenServiceMethods>;
  readonly impl: ServiceImpl<GenServiceMethods>;
  /** Every call needs a token with this scope (UNAUTHENTICATED without a known token, PERMISSION_DENIED without the scope). */
  readonly scope: RequiredScope | undefined;
  readonly options: ServiceOptions;
}

/** Where a service is added; it does not know which transports will serve it (grpc-go's ServiceRegistrar). */
export interface ServiceRegistrar {
  /** Adds a generated service with its implementation; only before the transports start. */
  addService<T extends GenServiceMethods>(service: GenService<T>, impl: ServiceImpl<T>, scope?: RequiredScope, options?: ServiceOptions): void;
}

/** The agent's one list of services: each transport (gRPC on 4317, Connect on the admin port) serves what it holds. */
export interface ServiceRegistry extends ServiceRegistrar {
  /** The services added, in order. The first call closes the registry: adding later throws. */
  services(): readonly RegisteredService[];
  /** Full names of the services added, e.g. `grpc.health.v1.Health`. */
  names(): string[];
  /** The files that define the services added (for reflection). */
  files(): DescFile[];
}

/** Creates an empty registry. */
export function createServiceRegistry(): ServiceRegistry {
  const added: RegisteredService[] = [];
  let closed = false;
  return {
    addService(service, impl, scope, options = {}) {
      if (closed) throw new Error(`service ${service.typeName} added after the servers started`);
      if (added.some((s) => s.service.typeName === service.typeName)) throw new Error(`service ${service.typeName} added twice`);
      added.push({ service, impl, scope, options });
    },
    services() {
      closed = true;
      return added;
    },
    names: () => added.map((s) => s.service.typeName),
    files: () => [...new Set(added.map((s) => s.service.file))],
  };
}
