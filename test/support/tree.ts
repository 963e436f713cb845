/** A configuration tree, as a YAML file holds it. */
export type Tree = { [key: string]: unknown };

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `base` with `over` merged in, key by key: trees are merged, anything else (arrays too) replaced. */
export function mergeTrees(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isTree(v) && isTree(out[k]) ? mergeTrees(out[k], v) : v;
  return out;
}
