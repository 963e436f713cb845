// Prints the JSON rows of one SQL query against an embedded data directory (no agent may hold it):
// node bench/parts.mjs <data dir> <sql>.
import { createEmbeddedTransport } from '../dist/storage/embedded.js';

const [, , dir, sql] = process.argv;
const t = await createEmbeddedTransport({ path: dir });
for (const row of await t.query(sql)) process.stdout.write(`${JSON.stringify(row)}\n`);
await t.close();
