/**
 * Where a worker thread's entry module is, and the Node options it needs to run there. From dist/
 * the entry is the built `.js` beside this module. From the TypeScript sources (vitest runs them)
 * it is the `.ts` file, which Node runs with type transformation and with ts-sources.mjs mapping
 * the sources' `./x.js` imports to `./x.ts`.
 */
export function threadEntry(name: string, base: string = import.meta.url): { url: URL; execArgv: string[] } {
  if (!base.endsWith('.ts')) return { url: new URL(`./${name}.js`, base), execArgv: [] };
  const hooks = new URL('./ts-sources.mjs', base).href;
  return { url: new URL(`./${name}.ts`, base), execArgv: ['--experimental-transform-types', '--disable-warning=ExperimentalWarning', '--import', hooks] };
}
