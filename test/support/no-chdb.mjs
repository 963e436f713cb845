// Preloaded with `node --import` to run Heimdall as if the optional chdb package were not installed.
import { registerHooks } from 'node:module';

registerHooks({
  resolve(specifier, context, next) {
    if (specifier === 'chdb') {
      const err = new Error(`Cannot find package 'chdb' imported from ${context.parentURL}`);
      err.code = 'ERR_MODULE_NOT_FOUND';
      throw err;
    }
    return next(specifier, context);
  },
});
