import { toJson, type MessageInitShape } from '@bufbuild/protobuf';
import type { Command } from 'commander';
import { ActionSchema, ActionState, GetDashboardResponseSchema, GetStateResponseSchema, SecurityService, type Action, type GetDashboardResponse, type RequestActionRequestSchema } from '../gen/heimdall/v1/security_pb.js';
import { MODE_NAMES } from '../ratelimit/security-policy.js';
import type { AgentClient } from './client.js';
import { ago, clientCommand, EXIT_NOT_FOUND, iso, out, positive, table, tsOf, withClient } from './common.js';
import { ACTION_HEADER, actionOutcome, actionRows, BLOCK_HEADER, blockRows, modeOf, stateOf, ttlSeconds } from './security-format.js';

/** An action's outcome: lines for a person, or the action as one JSON object. */
function printAction(a: Action | undefined, json: boolean | undefined): void {
  if (!a) return;
  if (json) out(JSON.stringify(toJson(ActionSchema, a)));
  else for (const l of actionOutcome(a)) out(l);
}

/** Requests a change and prints the pending action (its id, and that a second admin must approve it). */
async function request(c: AgentClient, change: MessageInitShape<typeof RequestActionRequestSchema>['change'], reason: string | undefined, json: boolean | undefined): Promise<void> {
  const { action } = await c.unary(SecurityService.method.requestAction, { change, reason: reason ?? '' });
  printAction(action, json);
}

/** `heimdall security mode [mode] --reason R`: the state, or a request to change the mode. */
function addModeCommand(security: Command): void {
  clientCommand(security, 'mode', 'show the mode and the blocked entities; with a mode, request a change to it (a second admin approves it)')
    .argument('[mode]', 'normal, elevated or lockdown')
    .option('--reason <text>', 'why (required with a mode; kept in the action and its audit event)')
    .action((mode: string | undefined, o: { reason?: string }, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        if (mode !== undefined) {
          const wanted = modeOf(mode);
          if (!o.reason) throw new Error('--reason: required when requesting a mode change');
          return request(c, { case: 'setMode', value: { mode: wanted } }, o.reason, g.json);
        }
        const state = await c.unary(SecurityService.method.getState, {});
        if (g.json) return out(JSON.stringify(toJson(GetStateResponseSchema, state)));
        out(`mode ${MODE_NAMES[state.mode]}; ${state.blocks.length} blocked, ${state.pendingActions} pending action${state.pendingActions === 1 ? '' : 's'}`);
        if (state.blocks.length > 0) {
          out('');
          table(BLOCK_HEADER, blockRows(state.blocks));
        }
      }),
    );
}

/** `heimdall security block|unblock <entity>`: requests a block or its removal. */
function addBlockCommands(security: Command): void {
  clientCommand(security, 'block', 'request a block of an entity (a second admin approves it)')
    .argument('<entity>', 'a descriptor entry key=value, e.g. remote_address=203.0.113.7')
    .option('--ttl <duration>', 'how long the block lasts once approved, e.g. 30m or 7d (default: until unblocked)')
    .option('--reason <text>', 'why (kept in the block, the action and its audit event)')
    .action((entity: string, o: { ttl?: string; reason?: string }, cmd: Command) =>
      withClient(cmd, (c, g) => request(c, { case: 'block', value: { entity, reason: o.reason ?? '', durationSeconds: o.ttl === undefined ? 0 : ttlSeconds(o.ttl) } }, o.reason, g.json)),
    );
  clientCommand(security, 'unblock', 'request the removal of a block (a second admin approves it)')
    .argument('<entity>', 'the blocked descriptor entry key=value')
    .option('--reason <text>', 'why')
    .action((entity: string, o: { reason?: string }, cmd: Command) => withClient(cmd, (c, g) => request(c, { case: 'unblock', value: { entity } }, o.reason, g.json)));
}

/** `heimdall security actions|approve|reject`: the actions and their decisions; an unknown id exits EXIT_NOT_FOUND. */
function addActionCommands(security: Command): void {
  clientCommand(security, 'actions', 'list actions (requested changes), newest first')
    .option('--status <state>', 'only pending, executed, rejected or expired ones')
    .option('--limit <n>', 'at most this many (up to 1000)', '100')
    .action((o: { status?: string; limit: string }, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const limit = positive(o.limit, '--limit');
        const { actions, truncated } = await c.unary(SecurityService.method.listActions, { state: o.status === undefined ? ActionState.UNSPECIFIED : stateOf(o.status), limit });
        if (g.json) for (const a of actions) out(JSON.stringify(toJson(ActionSchema, a)));
        else table(ACTION_HEADER, actionRows(actions));
        if (truncated && !g.json) process.stderr.write(`(the newest ${limit}; more with --limit)\n`);
      }),
    );
  const exitHelp = `\nExit status: 0 done, 1 the call was refused (e.g. PERMISSION_DENIED: you requested it yourself) or the input is bad, ${EXIT_NOT_FOUND} no action with that id.`;
  clientCommand(security, 'approve', `approve a pending action and execute it; not by the admin who requested it (exit status ${EXIT_NOT_FOUND} for an unknown id)`)
    .argument('<action-id>')
    .addHelpText('after', exitHelp)
    .action((id: string, _o: unknown, cmd: Command) => withClient(cmd, async (c, g) => printAction((await c.unary(SecurityService.method.approveAction, { id })).action, g.json), EXIT_NOT_FOUND));
  clientCommand(security, 'reject', `reject a pending action (exit status ${EXIT_NOT_FOUND} for an unknown id)`)
    .argument('<action-id>')
    .option('--reason <text>', 'why (replaces the request\'s reason in the action)')
    .addHelpText('after', exitHelp)
    .action((id: string, o: { reason?: string }, cmd: Command) => withClient(cmd, async (c, g) => printAction((await c.unary(SecurityService.method.rejectAction, { id, reason: o.reason ?? '' })).action, g.json), EXIT_NOT_FOUND));
}

/** A dashboard as text: the window, mode and counts, then a table per part that has rows. */
function printDashboard(d: GetDashboardResponse): void {
  out(`${iso(d.startTime)} .. ${iso(d.endTime)}: mode ${MODE_NAMES[d.mode]}; ${d.blocks.length} blocked, ${d.pendingActions.length} pending action${d.pendingActions.length === 1 ? '' : 's'}`);
  const section = (header: string[], rows: string[][]) => {
    if (rows.length === 0) return;
    out('');
    table(header, rows);
  };
  if (d.overLimit.length === 0) out('no over-limit hits in the window');
  section(['DOMAIN', 'LIMIT', 'HITS OVER LIMIT'], d.overLimit.map((r) => [r.domain, r.descriptor, String(r.hits)]));
  section(['TOP OFFENDER', 'HITS OVER LIMIT'], d.topEntities.map((r) => [r.entity, String(r.hits)]));
  section(['INCIDENT WINDOW', 'DOMAIN', 'LIMIT', 'ENTITY', 'HITS OVER LIMIT'], d.incidents.map((r) => [iso(r.time), r.domain, r.descriptor, r.entity, String(r.hits)]));
  section(BLOCK_HEADER, blockRows(d.blocks));
  if (d.pendingActions.length === 0) return;
  out('');
  out('pending actions (a second admin approves or rejects them):');
  table(ACTION_HEADER, actionRows(d.pendingActions));
}

/** `heimdall security dashboard`: over-limit hits, top offenders, incidents, blocks and pending actions over a window. */
function addDashboardCommand(security: Command): void {
  clientCommand(security, 'dashboard', 'over-limit hits by limit, top offending entities, incidents, blocks and pending actions over a window')
    .option('--since <duration>', 'how far back', '1h')
    .option('--top <n>', 'offenders and incidents listed (the agent lists at most 1000)', '10')
    .action((o: { since: string; top: string }, cmd: Command) =>
      withClient(cmd, async (c, g) => {
        const d = await c.unary(SecurityService.method.getDashboard, { startTime: tsOf(ago(o.since, '--since')), top: positive(o.top, '--top') });
        if (g.json) out(JSON.stringify(toJson(GetDashboardResponseSchema, d)));
        else printDashboard(d);
      }),
    );
}

/** Adds `heimdall security mode|block|unblock|actions|approve|reject|dashboard` (heimdall.v1.SecurityService; an admin token). */
export function addSecurityCommands(program: Command): void {
  const security = program
    .command('security')
    .description('rate-limit security: mode, blocks, actions a second admin approves, dashboard (needs a token with the admin scope)')
    .addHelpText('after', '\nEvery change (mode, block, unblock) is an action: requested by one admin, it stays pending until another\nadmin approves it (then it is executed) or rejects it, or it expires (ratelimit.security.approval_ttl).');
  addModeCommand(security);
  addBlockCommands(security);
  addActionCommands(security);
  addDashboardCommand(security);
}
