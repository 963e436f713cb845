// Preloaded with `node --import` to run Heimdall as on a platform whose chdb build npm did not install
// (package-lock.json lists only linux-x64's): chdb is there, its @chdb/lib-* native package is not.
import { registerHooks } from 'node:module';

registerHooks({
  resolve(specifier, context, next) {
    if (specifier.startsWith('@chdb/lib-')) {
      const err = new Error(`Cannot find module '${specifier}'`);
      err.code = 'MODULE_NOT_FOUND';
      throw err;
    }
    return next(specifier, context);
  },
});
