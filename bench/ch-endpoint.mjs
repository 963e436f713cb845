// The test-only ClickHouse HTTP endpoint over chdb, as a process of its own (for the server-transport phase).
import { startClickHouseHttp } from '../test/support/clickhouse-http.ts';

const ch = await startClickHouseHttp(process.argv[2]);
process.stdout.write(`${JSON.stringify({ port: ch.port })}\n`);
process.on('SIGTERM', () => void ch.close().then(() => process.exit(0)));
