// Baseline: a bare node:http server that reads a POST body and answers the JSON text in BENCH_BODY
// (the same size as the agent's answer it is compared with).
import { createServer } from 'node:http';
const body = process.env.BENCH_BODY ?? '{}';
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
