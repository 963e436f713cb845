import { createRedisClient, type RedisTarget } from '../redis/client.js';
import type { Logger } from '../telemetry/logger.js';

/** A job's run lease, held while one replica runs it. */
export interface Lease {
  /** Fencing token: grows with every lease taken for the job, so a stale holder can be told apart. */
  readonly fence: number;
  /** Aborts when the lease is lost (not renewed in time, or taken over). */
  readonly lost: AbortSignal;
  /** Stops renewing and deletes the lease if this holder still has it. Never throws. */
  release(): Promise<void>;
}

/** Cluster-wide coordination of jobs through Redis. */
export interface Leases {
  /** True for exactly one caller per job and tick among the agents on this Redis; throws when Redis cannot answer. */
  claimTick(job: string, tickMs: number): Promise<boolean>;
  /**
   * True for exactly one caller per saved state of a run (`version`): who recovers an unfinished run.
   * Throws when Redis cannot answer.
   */
  claimRun(runId: string, version: number): Promise<boolean>;
  /** Takes the job's lease (SET NX PX), renewed every third of its time; undefined while another replica holds it. Throws when Redis cannot answer. */
  acquire(job: string): Promise<Lease | undefined>;
  /** Throws when Redis does not answer a PING. */
  ping(): Promise<void>;
  /** Disconnects. */
  shutdown(): void;
}

/** Extends the lease only if this holder still has it. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
/** Deletes the lease only if this holder still has it. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

interface LeaseCommands {
  heimdallRenew(key: string, value: string, ttl: number): Promise<number>;
  heimdallRelease(key: string, value: string): Promise<number>;
}

/** Creates the lease client. `instance` names this agent in lease values. */
export function createLeases(options: { target: RedisTarget; keyPrefix: string; instance: string; ttlMs: number; logger: Logger }): Leases {
  const logger = options.logger.child({ component: 'job-leases' });
  const client = createRedisClient({ target: options.target, logger });
  client.defineCommand('heimdallRenew', { numberOfKeys: 1, lua: RENEW });
  client.defineCommand('heimdallRelease', { numberOfKeys: 1, lua: RELEASE });
  const cmd = client as unknown as LeaseCommands;
  const key = (job: string, what: string): string => `${options.keyPrefix}${job}:${what}`;

  return {
    async claimTick(job, tickMs) {
      // A tick key outlives any clock skew between replicas; ticks are told apart by their time.
      const ok = await client.set(key(job, `tick:${tickMs}`), options.instance, 'PX', Math.max(60_000, options.ttlMs * 4), 'NX');
      return ok === 'OK';
    },
    async claimRun(runId, version) {
      // A claimer that dies before saving leaves the run as it was: another can claim it after an hour.
      return (await client.set(`${options.keyPrefix}run:${runId}:${version}`, options.instance, 'PX', 3_600_000, 'NX')) === 'OK';
    },
    async acquire(job) {
      const k = key(job, 'lease');
      const fence = await client.incr(key(job, 'fence'));
      const value = `${options.instance}:${fence}`;
      if ((await client.set(k, value, 'PX', options.ttlMs, 'NX')) !== 'OK') return undefined;
      const lost = new AbortController();
      let renewedAt = Date.now();
      const timer = setInterval(() => {
        cmd.heimdallRenew(k, value, options.ttlMs).then(
          (ok) => {
            if (ok === 1) renewedAt = Date.now();
            else lost.abort(new Error(`lease of job ${job} was taken over`));
          },
          (err: unknown) => {
            // Redis unreachable: the lease lapses once its time has passed since the last renewal.
            if (Date.now() - renewedAt >= options.ttlMs) lost.abort(new Error(`lease of job ${job} lapsed: redis unreachable (${(err as Error).message})`));
          },
        );
      }, Math.max(100, Math.floor(options.ttlMs / 3)));
      timer.unref();
      lost.signal.addEventListener('abort', () => clearInterval(timer), { once: true });
      return {
        fence,
        lost: lost.signal,
        async release() {
          clearInterval(timer);
          await cmd.heimdallRelease(k, value).catch((err: unknown) => logger.warn({ err, job }, 'lease not released; it lapses by itself'));
        },
      };
    },
    async ping() {
      await client.ping();
    },
    shutdown() {
      client.disconnect();
    },
  };
}
