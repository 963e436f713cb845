import type { Logger } from '../telemetry/logger.js';
import { describeComponent, type HealthRegistry } from './registry.js';

/**
 * Logs every change of the agent's overall health: a warning when it turns degraded or not ready
 * (with the components and reasons), an info line when it is back to ok. Returns the unsubscribe
 * function.
 */
export function logHealthTransitions(registry: HealthRegistry, logger: Logger): () => void {
  let last = '';
  let warned = false;
  return registry.onChange(() => {
    const o = registry.overall();
    // A change of reason alone (a new score, a new retry delay) is not logged again.
    const key = `${o.status}|${registry.components().map((c) => `${c.name}:${c.state}`).join(',')}`;
    if (key === last || registry.shuttingDown) return;
    last = key;
    if (o.status === 'ok') {
      if (warned) logger.info({ health: o.status }, 'health: every component is ready again');
      warned = false;
      return;
    }
    // Components still starting are not news.
    const problems = registry.components().filter((c) => c.state !== 'ready' && c.state !== 'starting');
    if (problems.length === 0) return;
    warned = true;
    const degraded = problems.map(describeComponent);
    logger.warn({ health: o.status, ready: o.ready, strictReady: o.strictReady, degraded }, `health: ${o.status}${o.ready ? ' (still serving local clients)' : ''}: ${degraded.join('; ')}`);
  });
}
