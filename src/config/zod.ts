import { z } from 'zod';

// zod validates configuration-sized input only (the config file, limits and tokens files, job specs):
// interpreting it beats compiling a parser per schema at start (~16 ms of a cold start for the
// configuration alone). Every module takes `z` from here, so the setting is made before any parse.
z.config({ jitless: true });

export { z };
