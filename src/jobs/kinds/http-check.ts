import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Counter, Gauge, type Registry } from 'prom-client';
import { submitAgentEvents, type AgentEventSink } from '../../events/events.js';
import { Severity } from '../../gen/heimdall/v1/events_pb.js';
import { redactUrlSecrets } from '../../ingest/processors/redaction.js';
import { createJobSeries, jobLabel, type JobSeries } from '../job-series.js';
import { AddressRefused, type AddressGuard } from './address-guard.js';
import type { TaskRunner } from './kind.js';
import { KIND_PARAMS, type KindParams } from './params.js';

/**
 * One request, resolved to its status once the response headers arrive (the body is not read).
 * The connection goes straight to an address the guard checked (never through a proxy); a refused
 * host or address fails the request.
 */
function probe(p: KindParams<'http-check'>, guard: AddressGuard, signal: AbortSignal): Promise<number> {
  const url = new URL(p.url);
  const refused = guard.refusedHost(url.hostname);
  if (refused) return Promise.reject(new AddressRefused(`refused: ${refused}`));
  return new Promise<number>((resolve, reject) => {
    // agent: false, a fresh agent without proxy settings: through a proxy (NODE_USE_ENV_PROXY with
    // HTTP_PROXY) the proxy would resolve the name, past the guard.
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: p.method, headers: p.headers, lookup: guard.lookup, signal, agent: false }, (res) => {
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    req.on('error', reject);
    req.end(p.body);
  });
}

/**
 * The `http-check` task: one request to the URL, timed to its response headers. A status not
 * expected, a timeout, a connection error or a refused address (link-local, cloud metadata; see
 * the guard) fails the attempt; a slow answer passes with a warning. Redirects are not followed.
 * Every probe is an event (`http-check.result`) and sets the probe metrics. Its text (messages,
 * errors, the event) shows the URL without its password or secret query values. The metrics are
 * labelled `job_name` through `series` (a new one when not given).
 */
export function createHttpCheck(deps: { pipeline: AgentEventSink; metrics: Registry; guard: AddressGuard; series?: JobSeries | undefined }): TaskRunner {
  const series = deps.series ?? createJobSeries();
  const labelNames = ['job_name'] as const;
  const up = new Gauge({ name: 'heimdall_http_check_up', help: 'Whether the last probe of an http-check job passed (1) or not (0).', labelNames, registers: [deps.metrics] });
  const seconds = new Gauge({ name: 'heimdall_http_check_duration_seconds', help: 'Time to the response headers of the last probe.', labelNames, registers: [deps.metrics] });
  const code = new Gauge({ name: 'heimdall_http_check_status_code', help: 'HTTP status of the last probe (0 without an answer).', labelNames, registers: [deps.metrics] });
  const refusedProbes = new Counter({ name: 'heimdall_http_check_refused_total', help: 'Probes refused because their address is link-local or a cloud metadata service (jobs.http_check.allowed_networks).', labelNames, registers: [deps.metrics] });
  return async (raw, ctx) => {
    const p = KIND_PARAMS['http-check'].parse(raw);
    const job = jobLabel(ctx.jobName);
    const url = redactUrlSecrets(p.url);
    const t0 = performance.now();
    let status = 0;
    let failure = '';
    const timeout = AbortSignal.timeout(p.timeout);
    try {
      status = await probe(p, deps.guard, AbortSignal.any([ctx.signal, timeout]));
      const ok = p.expected_status.length > 0 ? p.expected_status.includes(status) : status >= 200 && status < 300;
      if (!ok) failure = `${p.method} ${url} answered ${status}, expected ${p.expected_status.length > 0 ? p.expected_status.join(' or ') : '2xx'}`;
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      const e = err as Error;
      // The error may quote the URL: its text is redacted too.
      failure = timeout.aborted ? `${p.method} ${url}: no answer in ${p.timeout} ms` : redactUrlSecrets(`${p.method} ${url}: ${e.message}`);
      if (e instanceof AddressRefused) refusedProbes.inc(series.track(refusedProbes, ctx.jobName, {}));
    }
    const ms = performance.now() - t0;
    const slow = !failure && ms > p.latency_threshold;
    up.set(series.track(up, ctx.jobName, {}), failure ? 0 : 1);
    seconds.set(series.track(seconds, ctx.jobName, {}), ms / 1000);
    code.set(series.track(code, ctx.jobName, {}), status);
    const message = failure || `${p.method} ${url} answered ${status} in ${ms.toFixed(1)} ms${slow ? ` (slower than ${p.latency_threshold} ms)` : ''}`;
    const result = { url, method: p.method, status, latency_ms: Math.round(ms * 10) / 10, ok: !failure, slow };
    submitAgentEvents(
      deps.pipeline,
      [{ source: 'scheduler', correlationId: ctx.correlationId, eventType: 'http-check.result', severity: failure ? Severity.ERROR : slow ? Severity.WARNING : Severity.INFO, category: 'jobs', message, actorId: job, status: failure ? 'failed' : slow ? 'slow' : 'ok', payload: { job, run: ctx.runId, ...result } }],
      ctx.logger,
    );
    if (failure) throw new Error(failure);
    return { message, result };
  };
}
