/**
 * Dashboards and alert rules under deploy/ select the job families by `job_name`: `job` is the
 * scrape target's label in Prometheus (ours would become `exported_job`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/** Every JSON and YAML file under deploy/ (dashboards, alert rules, manifests), at any depth. */
const deployFiles = (): string[] =>
  readdirSync(join(ROOT, 'deploy'), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(json|ya?ml)$/.test(f))
    .map((f) => join(ROOT, 'deploy', f));

/** Selectors of heimdall_job_* and heimdall_http_check_* series that match on a `job` label, with their files. */
function jobLabelSelectors(text: string): string[] {
  // JSON dashboards escape the quotes in their expressions.
  const plain = text.replaceAll('\\"', '"');
  return [...plain.matchAll(/heimdall_(?:job|http_check)_\w+\s*\{[^}]*\}/g)].map((m) => m[0]).filter((s) => /[{,]\s*job\s*(=|!=|=~|!~)/.test(s));
}

describe('deploy/ dashboards and alert rules', () => {
  it('finds selectors on the job label (and leaves job_name alone)', () => {
    expect(jobLabelSelectors('rate(heimdall_job_runs_total{job="x",status="failed"}[5m]) + heimdall_http_check_up{ job =~ \\"a.*\\"} + heimdall_job_queue_depth{job_name="y"}')).toEqual([
      'heimdall_job_runs_total{job="x",status="failed"}',
      'heimdall_http_check_up{ job =~ "a.*"}',
    ]);
  });

  it('select heimdall_job_* and heimdall_http_check_* series by job_name, never job', () => {
    const found = deployFiles().flatMap((f) => jobLabelSelectors(readFileSync(f, 'utf8')).map((s) => `${relative(ROOT, f)}: ${s}`));
    expect(found).toEqual([]);
  });
});
