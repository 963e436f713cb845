import type { ComponentHealth, HealthRegistry, OverallHealth } from './registry.js';

/** The agent's status document: GET /status and SystemService/GetStatus carry the same data. */
export interface AgentStatus extends OverallHealth {
  version: string;
  build: string;
  startedAt: Date;
  uptimeSeconds: number;
  configHash: string;
  components: ComponentHealth[];
}

/** Static facts the status document needs beside the registry. */
export interface StatusSource {
  version: string;
  build: string;
  startedAt: Date;
  configHash: string;
  registry: HealthRegistry;
}

/** Builds the status document as of now. */
export function agentStatus(source: StatusSource): AgentStatus {
  return {
    version: source.version,
    build: source.build,
    startedAt: source.startedAt,
    uptimeSeconds: (Date.now() - source.startedAt.getTime()) / 1000,
    configHash: source.configHash,
    ...source.registry.overall(),
    components: source.registry.components(),
  };
}
