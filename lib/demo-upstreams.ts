import { createServer, type Server } from 'node:http';

/**
 * Small demo services for `npm start`: a users service and two instances of
 * an orders service, each answering JSON that shows what the gateway sent.
 */
export async function startDemoUpstreams(host = '127.0.0.1', ports = { users: 3001, orders: [3002, 3003] }): Promise<Server[]> {
  const servers: Server[] = [];
  const start = (port: number, name: string): Promise<void> => {
    const server = createServer((req, res) => {
      if (req.url === '/health') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          service: name, port, method: req.method, url: req.url,
          requestId: req.headers['x-request-id'], forwardedFor: req.headers['x-forwarded-for'],
          body: chunks.length > 0 ? Buffer.concat(chunks).toString() : undefined,
        }) + '\n');
      });
    });
    servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  };
  await start(ports.users, 'users');
  for (const p of ports.orders) await start(p, 'orders');
  return servers;
}
