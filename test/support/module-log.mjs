// Preloaded with `node --import` into an agent process by a test: records every module the process
// loads and, at exit, writes the packages they came from (one a line: `chdb`, `@grpc/grpc-js`, ...)
// to the file named by $HEIMDALL_MODULE_LOG.
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const packages = new Set();
registerHooks({
  load(url, context, nextLoad) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (m) packages.add(m[1]);
    return nextLoad(url, context);
  },
});
process.on('exit', () => writeFileSync(process.env.HEIMDALL_MODULE_LOG, [...packages].sort().join('\n')));
