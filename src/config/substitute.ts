const REFERENCE = /\$\$\{|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** An environment reference that cannot be resolved. */
export class SubstitutionError extends Error {
  override name = 'SubstitutionError';
  readonly path: string;
  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

function substituteString(text: string, env: NodeJS.ProcessEnv, path: string): string {
  return text.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    const value = env[name ?? ''];
    // As in the shell: ${NAME:-default} takes the default when NAME is unset or empty.
    if (fallback !== undefined) return value === undefined || value === '' ? fallback : value;
    if (value !== undefined) return value;
    throw new SubstitutionError(path, `environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
  });
}

/**
 * Replaces `${env:NAME}`, `${NAME}` and `${NAME:-default}` in every string of a parsed YAML tree
 * (`$${` stands for a literal `${`). Substituting after parsing means a value can never inject YAML;
 * substituted values stay text (the schema reads numbers and booleans from text where it expects
 * them). Throws SubstitutionError naming the key path when a variable without default is unset.
 */
export function substituteEnv(node: unknown, env: NodeJS.ProcessEnv, path = ''): unknown {
  if (typeof node === 'string') return substituteString(node, env, path);
  if (Array.isArray(node)) return node.map((item, i) => substituteEnv(item, env, `${path}[${i}]`));
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(
      Object.entries(node).map(([key, value]) => [key, substituteEnv(value, env, path ? `${path}.${key}` : key)]),
    );
  }
  return node;
}
