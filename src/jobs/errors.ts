import { AgentError } from '../errors/agent-error.js';

/** Why a jobs operation was refused; each transport maps its code once (see AgentError). */
export class JobError extends AgentError {
  override name = 'JobError';
}
