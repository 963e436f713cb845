import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ComponentState, SystemService } from '../gen/heimdall/v1/system_pb.js';
import { agentStatus, type StatusSource } from './status.js';
import type { ComponentState as State } from './registry.js';
import type { GrpcServer } from '../server/grpc.js';

const STATE: Record<State, ComponentState> = {
  starting: ComponentState.STARTING,
  ready: ComponentState.READY,
  degraded: ComponentState.DEGRADED,
  failed: ComponentState.FAILED,
  stopping: ComponentState.STOPPING,
};

/** Adds `heimdall.v1.SystemService` (GetStatus: the same data as GET /status). */
export function addSystemService(server: GrpcServer, source: StatusSource): void {
  server.addService(SystemService, {
    async getStatus() {
      const s = agentStatus(source);
      return {
        version: s.version,
        build: s.build,
        startedAt: timestampFromDate(s.startedAt),
        uptimeSeconds: s.uptimeSeconds,
        configHash: s.configHash,
        ready: s.ready,
        components: s.components.map((c) => ({ name: c.name, state: STATE[c.state], since: timestampFromDate(c.since), reason: c.reason, critical: c.critical })),
      };
    },
  }, 'admin');
}
