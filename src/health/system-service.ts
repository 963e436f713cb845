import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ComponentState, OverallStatus, ReadinessGate, SystemService } from '../gen/heimdall/v1/system_pb.js';
import { agentStatus, type StatusSource } from './status.js';
import type { OverallHealth, ReadinessGate as Gate, ComponentState as State } from './registry.js';
import type { ServiceRegistrar } from '../server/service-registry.js';

const STATE: Record<State, ComponentState> = {
  starting: ComponentState.STARTING,
  ready: ComponentState.READY,
  degraded: ComponentState.DEGRADED,
  failed: ComponentState.FAILED,
  stopping: ComponentState.STOPPING,
};
const GATE: Record<Gate, ReadinessGate> = { pod: ReadinessGate.POD, strict: ReadinessGate.STRICT, none: ReadinessGate.NONE };
const OVERALL: Record<OverallHealth['status'], OverallStatus> = { ok: OverallStatus.OK, degraded: OverallStatus.DEGRADED, 'not ready': OverallStatus.NOT_READY };

/** Adds `heimdall.v1.SystemService` (GetStatus: the same data as GET /status). */
export function addSystemService(services: ServiceRegistrar, source: StatusSource): void {
  services.addService(SystemService, {
    async getStatus() {
      const s = agentStatus(source);
      return {
        version: s.version,
        build: s.build,
        startedAt: timestampFromDate(s.startedAt),
        uptimeSeconds: s.uptimeSeconds,
        configHash: s.configHash,
        ready: s.ready,
        strictReady: s.strictReady,
        status: OVERALL[s.status],
        reasons: s.reasons,
        degraded: s.degraded,
        components: s.components.map((c) => ({ name: c.name, state: STATE[c.state], since: timestampFromDate(c.since), reason: c.reason, gate: GATE[c.gate] })),
      };
    },
  }, 'admin');
}
