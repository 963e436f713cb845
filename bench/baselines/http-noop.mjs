// Baseline: a bare node:http server answering a small JSON body, like /readyz without the agent.
import { createServer } from 'node:http';
const body = JSON.stringify({ status: 'ready', reasons: [], components: [] });
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
