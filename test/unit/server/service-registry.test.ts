/** The one list of services every transport reads. */
import { describe, expect, it } from 'vitest';
import { SystemService } from '../../../src/gen/heimdall/v1/system_pb.js';
import { QueryService } from '../../../src/gen/heimdall/v1/query_pb.js';
import type { ServiceImpl } from '../../../src/server/grpc-service.js';
import { createServiceRegistry } from '../../../src/server/service-registry.js';

const system: ServiceImpl<typeof SystemService.method> = { getStatus: () => Promise.resolve({}) };

describe('service registry', () => {
  it('lists services in order with their scope and options, names and files', () => {
    const registry = createServiceRegistry();
    registry.addService(SystemService, system, 'admin');
    registry.addService(QueryService, {} as never, 'query', { traced: false });
    expect(registry.names()).toEqual(['heimdall.v1.SystemService', 'heimdall.v1.QueryService']);
    expect(registry.files().map((f) => f.name)).toEqual(['heimdall/v1/system', 'heimdall/v1/query']);
    const [first, second] = registry.services();
    expect(first).toMatchObject({ scope: 'admin', options: {} });
    expect(first?.impl).toBe(system);
    expect(second).toMatchObject({ scope: 'query', options: { traced: false } });
  });

  it('refuses a service added twice, or once the transports read the list', () => {
    const registry = createServiceRegistry();
    registry.addService(SystemService, system);
    expect(() => registry.addService(SystemService, system)).toThrow(/heimdall\.v1\.SystemService added twice/);
    registry.services();
    expect(() => registry.addService(QueryService, {} as never)).toThrow(/heimdall\.v1\.QueryService added after the servers started/);
  });
});
