/** `heimdall security ...` (the built CLI) against an agent process with auth on and two admin tokens: approvals by a second admin, blocks, rejections, the dashboard, exit statuses. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AgentClient } from '../../src/cli/client.js';
import { SecurityService } from '../../src/gen/heimdall/v1/security_pb.js';
import { startAgentProcess, untilReady, writeAgentConfig, type AgentProcess } from '../support/agent-process.js';
import { processTimeout, runCli, type CliResult } from '../support/cli.js';
import { EDGE_LIMITS, overLimitBurst } from '../support/over-limit.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const TOKENS = { adminA: 'admin-a-token-00000001', adminB: 'admin-b-token-00000001', envoy: 'ratelimit-token-000001', reader: 'query-token-0000000001' };
/** Over-limit hits of one entity in one window that make an incident; each refused check below adds this many. */
const THRESHOLD = 5;
const OFFENDER = 'remote_address=192.0.2.50';

describe('heimdall security', () => {
  const dir = tempDir();
  let agent: AgentProcess;
  let client: AgentClient;
  /** `heimdall security <args>` with `token` against the agent. */
  const security = (token: string, ...args: string[]): Promise<CliResult> => runCli(['security', ...args, '--addr', agent.addr, '--token', token]);
  /** The id a request printed ("... must approve it: heimdall security approve <id>"). */
  const requestedId = (r: CliResult): string => {
    expect(r).toMatchObject({ status: 0, stderr: '' });
    const id = /approve (\S+)\n$/.exec(r.stdout)?.[1];
    if (!id) throw new Error(`no action id in ${JSON.stringify(r.stdout)}`);
    return id;
  };

  beforeAll(async () => {
    mkdirSync(join(dir.path, 'limits'));
    writeFileSync(join(dir.path, 'limits', 'edge.yaml'), EDGE_LIMITS);
    const config = writeAgentConfig(dir.path, {
      auth: {
        enabled: true,
        tokens: [
          { name: 'admin-a', token: TOKENS.adminA, scopes: ['admin'] },
          { name: 'admin-b', token: TOKENS.adminB, scopes: ['admin'] },
          { name: 'envoy', token: TOKENS.envoy, scopes: ['ratelimit'] },
          { name: 'reader', token: TOKENS.reader, scopes: ['query'] },
        ],
      },
      ratelimit: { config_path: join(dir.path, 'limits'), over_limit_window: '1s', security: { incident_threshold: THRESHOLD } },
      jobs: { system_check: { enabled: false } },
    });
    agent = await startAgentProcess(config);
    await untilReady(agent);
    client = connect({ addr: agent.addr, token: TOKENS.adminA });
  }, processTimeout(1));
  afterAll(async () => {
    client.close();
    await agent.stop();
    dir.cleanup();
  });

  it('dashboard prints the over-limit hits, top offenders and incidents after rate-limit refusals', async () => {
    await overLimitBurst(agent.addr, TOKENS.envoy, THRESHOLD);
    // The refusals reach storage once their window is written: wait for both entities' hits.
    await until(async () => (await client.unary(SecurityService.method.getDashboard, {})).topEntities.reduce((n, e) => n + Number(e.hits), 0) === 3 * THRESHOLD + 3, 60_000, 'the refusals on the dashboard');

    const [text, json] = await Promise.all([security(TOKENS.adminA, 'dashboard', '--since', '1h'), security(TOKENS.adminA, 'dashboard', '--json', '--top', '1')]);
    expect(text).toMatchObject({ status: 0, stderr: '' });
    const lines = text.stdout.split('\n');
    expect(lines[0]).toMatch(/^\S+Z \.\. \S+Z: mode normal; 0 blocked, 0 pending actions$/);
    expect(lines).toContainEqual(expect.stringMatching(/^DOMAIN\s+LIMIT\s+HITS OVER LIMIT$/));
    expect(lines).toContainEqual(expect.stringMatching(/^edge\s+edge\.remote_address\s+18$/));
    expect(lines).toContainEqual(expect.stringMatching(/^TOP OFFENDER\s+HITS OVER LIMIT$/));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${OFFENDER}\\s+15$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^remote_address=192\.0\.2\.51\s+3$/));
    expect(lines).toContainEqual(expect.stringMatching(/^INCIDENT WINDOW\s+DOMAIN\s+LIMIT\s+ENTITY\s+HITS OVER LIMIT$/));
    const incidents = lines.slice(1).filter((l) => /^\d{4}-\S+Z /.test(l));
    expect(incidents.length).toBeGreaterThan(0);
    for (const l of incidents) expect(l).toMatch(new RegExp(`^\\S+Z\\s+edge\\s+edge\\.remote_address\\s+${OFFENDER}\\s+(\\d+)$`));
    expect(incidents.reduce((n, l) => n + Number(/(\d+)$/.exec(l)?.[1]), 0)).toBe(15); // the other entity's 3 hits are under the threshold

    expect(json).toMatchObject({ status: 0, stderr: '' });
    const d = JSON.parse(json.stdout) as { mode: string; topEntities: Array<{ entity: string; hits: string }> };
    expect(d.mode).toBe('SECURITY_MODE_NORMAL');
    expect(d.topEntities).toEqual([{ entity: OFFENDER, hits: '15' }]); // --top 1
  }, processTimeout(2, 60_000));

  it('a change waits for a second admin: the requester\'s approval is refused, another admin\'s applies it', async () => {
    const before = await security(TOKENS.adminA, 'mode');
    expect(before).toEqual({ status: 0, stdout: 'mode normal; 0 blocked, 0 pending actions\n', stderr: '' });

    const requested = await security(TOKENS.adminA, 'mode', 'lockdown', '--reason', 'credential stuffing');
    const id = requestedId(requested);
    expect(requested.stdout).toMatch(new RegExp(`^action ${id} is pending approval: set mode lockdown \\(requested by admin-a; expires \\S+Z\\)\\nA second admin \\(not admin-a\\) must approve it: heimdall security approve ${id}\\n$`));

    const [self, pending, dashboard] = await Promise.all([security(TOKENS.adminA, 'approve', id), security(TOKENS.adminB, 'actions', '--status', 'pending'), security(TOKENS.adminB, 'dashboard')]);
    expect(self).toEqual({ status: 1, stdout: '', stderr: `heimdall: PERMISSION_DENIED: action ${id} must be approved by an admin other than the one who requested it (admin-a)\n` });
    expect(pending.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+CHANGE\s+REQUESTED BY\s+DECIDED BY\s+CREATED\s+DECIDED OR EXPIRES\s+REASON$/);
    expect(pending.stdout).toMatch(new RegExp(`\\n${id}\\s+pending\\s+set mode lockdown\\s+admin-a\\s+-\\s+\\S+Z\\s+expires \\S+Z\\s+credential stuffing\\n`));

    expect(dashboard.stdout.split('\n')[0]).toMatch(/: mode normal; 0 blocked, 1 pending action$/);
    expect(dashboard.stdout).toMatch(new RegExp(`\\npending actions \\(a second admin approves or rejects them\\):\\nID .*\\n${id}\\s+pending\\s+set mode lockdown\\s`));

    const approved = await security(TOKENS.adminB, 'approve', id);
    expect(approved).toEqual({ status: 0, stdout: `action ${id} executed: set mode lockdown (requested by admin-a, approved by admin-b): credential stuffing\n`, stderr: '' });
    const [mode, listed] = await Promise.all([security(TOKENS.adminA, 'mode'), security(TOKENS.adminA, 'actions', '--json')]);
    expect(mode.stdout).toBe('mode lockdown; 0 blocked, 0 pending actions\n');
    expect(listed.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      expect.objectContaining({ id, setMode: { mode: 'SECURITY_MODE_LOCKDOWN' }, state: 'ACTION_STATE_EXECUTED', requestedBy: 'admin-a', decidedBy: 'admin-b', reason: 'credential stuffing' }),
    ]);
  }, processTimeout(7));

  it('block with a TTL, unblock, and reject: each through a second admin', async () => {
    const entity = 'remote_address=203.0.113.7';
    const block = await security(TOKENS.adminB, 'block', entity, '--ttl', '2h', '--reason', 'scanner', '--json');
    expect(block).toMatchObject({ status: 0, stderr: '' });
    const action = JSON.parse(block.stdout) as { id: string };
    expect(action).toMatchObject({ block: { entity, reason: 'scanner', durationSeconds: 7200 }, state: 'ACTION_STATE_PENDING', requestedBy: 'admin-b' });
    expect((await security(TOKENS.adminA, 'approve', action.id)).stdout).toBe(`action ${action.id} executed: block ${entity} for 2h (requested by admin-b, approved by admin-a): scanner\n`);
    const blocked = (await security(TOKENS.adminA, 'mode')).stdout.split('\n');
    expect(blocked.slice(0, 3)).toEqual(['mode lockdown; 1 blocked, 0 pending actions', '', expect.stringMatching(/^BLOCKED ENTITY\s+EXPIRES\s+REQUESTED BY\s+APPROVED BY\s+CREATED\s+REASON$/)]);
    expect(blocked[3]).toMatch(new RegExp(`^${entity}\\s+\\S+Z\\s+admin-b\\s+admin-a\\s+\\S+Z\\s+scanner$`));

    const unblockId = requestedId(await security(TOKENS.adminA, 'unblock', entity, '--reason', 'false positive'));
    expect((await security(TOKENS.adminB, 'approve', unblockId)).stdout).toBe(`action ${unblockId} executed: unblock ${entity} (requested by admin-a, approved by admin-b): false positive\n`);

    const another = requestedId(await security(TOKENS.adminA, 'block', 'remote_address=198.51.100.9'));
    const rejected = await security(TOKENS.adminB, 'reject', another, '--reason', 'wrong address');
    expect(rejected).toEqual({ status: 0, stdout: `action ${another} rejected: block remote_address=198.51.100.9 until unblocked (requested by admin-a, rejected by admin-b): wrong address\n`, stderr: '' });
    const [after, rejectedList, again] = await Promise.all([security(TOKENS.adminA, 'mode'), security(TOKENS.adminA, 'actions', '--status', 'rejected'), security(TOKENS.adminA, 'approve', another)]);
    expect(after.stdout).toBe('mode lockdown; 0 blocked, 0 pending actions\n');
    expect(rejectedList.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^ID\s/), expect.stringMatching(new RegExp(`^${another}\\s+rejected\\s+block remote_address=198\\.51\\.100\\.9 until unblocked\\s+admin-a\\s+admin-b\\s+\\S+Z\\s+\\S+Z\\s+wrong address$`))]);
    expect(again).toEqual({ status: 1, stdout: '', stderr: `heimdall: FAILED_PRECONDITION: action ${another} is rejected, not pending\n` });
  }, processTimeout(10));

  it('unknown action ids exit 3; a token without the admin scope, bad input and a missing reason exit 1 with one line', async () => {
    const results = await Promise.all([
      security(TOKENS.adminB, 'approve', 'no-such-action'),
      security(TOKENS.adminB, 'reject', 'no-such-action', '--json'),
      security(TOKENS.reader, 'mode'),
      security(TOKENS.adminA, 'mode', 'panic', '--reason', 'x'),
      security(TOKENS.adminA, 'mode', 'elevated'),
      security(TOKENS.adminA, 'block', 'no-equals-sign'),
      security(TOKENS.adminA, 'block', 'user=x', '--ttl', '500ms'),
      security(TOKENS.adminA, 'actions', '--status', 'done'),
      security(TOKENS.adminA, 'dashboard', '--top', '0'),
    ]);
    const [help, programHelp] = await Promise.all([runCli(['security', '--help']), runCli(['--help'])]);
    expect(results).toEqual([
      { status: 3, stdout: '', stderr: 'heimdall: NOT_FOUND: id: no action "no-such-action"\n' },
      { status: 3, stdout: '', stderr: 'heimdall: NOT_FOUND: id: no action "no-such-action"\n' },
      { status: 1, stdout: '', stderr: 'heimdall: PERMISSION_DENIED: token "reader" lacks the "admin" scope\n' },
      { status: 1, stdout: '', stderr: 'heimdall: mode: expected one of normal, elevated, lockdown, got "panic"\n' },
      { status: 1, stdout: '', stderr: 'heimdall: --reason: required when requesting a mode change\n' },
      { status: 1, stdout: '', stderr: 'heimdall: INVALID_ARGUMENT: block.entity: expected a descriptor entry key=value, got "no-equals-sign"\n' },
      { status: 1, stdout: '', stderr: 'heimdall: --ttl: expected a duration from 1s to 4294967295s such as 30m, 24h or 7d, got "500ms"\n' },
      { status: 1, stdout: '', stderr: 'heimdall: --status: expected one of pending, executed, rejected, expired, got "done"\n' },
      { status: 1, stdout: '', stderr: 'heimdall: --top: expected a positive integer, got "0"\n' },
    ]);
    for (const command of ['mode [options] [mode]', 'block [options] <entity>', 'unblock [options] <entity>', 'actions [options]', 'approve [options] <action-id>', 'reject [options] <action-id>', 'dashboard [options]']) expect(help.stdout).toContain(`  ${command}`);
    expect(help.stdout).toContain('stays pending until another\nadmin approves it');
    expect(programHelp.stdout).toMatch(/\n {2}security +rate-limit security: mode, blocks, actions a second/);
    // None of them left an action behind.
    expect((await client.unary(SecurityService.method.listActions, {})).actions).toHaveLength(4);
  }, processTimeout(11));
});
