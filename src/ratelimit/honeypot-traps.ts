import type { HoneypotConfig } from '../config/automation.js';
import { entryMatches, parseEntryPattern, type EntryPattern } from '../config/entry-patterns.js';
import type { DescriptorNode } from './limits.js';
import { matchNode } from './decide.js';
import type { RequestDescriptor } from './wire-request.js';

/** Where the traps are: the honeypots' entries (security config) and the descriptors limits files mark `honeypot: <name>`. */
export interface HoneypotTraps {
  /**
   * The honeypot a request descriptor springs: the first whose `entries` it holds all of, else the
   * one its matched node (limits-file matching, rate_limit or not) names; none: not a trap.
   */
  match(root: DescriptorNode | undefined, d: Pick<RequestDescriptor, 'entries'>): HoneypotConfig | undefined;
}

/** Whether a node of the tree under `node` is a trap. */
function anyTrap(node: DescriptorNode): boolean {
  if (node.honeypot !== undefined) return true;
  for (const child of node.children.values()) if (anyTrap(child)) return true;
  for (const list of node.wildcards.values()) for (const w of list) if (anyTrap(w.node)) return true;
  return false;
}

/** Whether `entries` hold an entry matching each of `patterns`. */
function holdsAll(patterns: readonly EntryPattern[], entries: ReadonlyArray<{ key: string; value: string }>): boolean {
  for (const p of patterns) {
    let found = false;
    for (const e of entries) if ((found = entryMatches(p, e.key, e.value))) break;
    if (!found) return false;
  }
  return true;
}

/**
 * Creates the traps of `honeypots` (ratelimit.security.automation.honeypots); none configured: undefined,
 * so a check without honeypots pays nothing. A domain's tree is walked for traps once (a reload makes a
 * new tree); a tree without any costs one weak-map lookup per descriptor; no allocation per call.
 */
export function createHoneypotTraps(honeypots: readonly HoneypotConfig[]): HoneypotTraps | undefined {
  if (honeypots.length === 0) return undefined;
  const byName = new Map(honeypots.map((h) => [h.name, h]));
  const byEntries = honeypots.filter((h) => h.entries.length > 0).map((h) => ({ honeypot: h, patterns: h.entries.map(parseEntryPattern) }));
  const trapped = new WeakMap<DescriptorNode, boolean>();
  return {
    match(root, d) {
      for (const t of byEntries) if (holdsAll(t.patterns, d.entries)) return t.honeypot;
      if (!root) return undefined;
      let traps = trapped.get(root);
      if (traps === undefined) trapped.set(root, (traps = anyTrap(root)));
      const name = traps ? matchNode(root, d)?.honeypot : undefined;
      return name === undefined ? undefined : byName.get(name);
    },
  };
}
