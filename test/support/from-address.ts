import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface FromAnswer { status: number; headers: IncomingHttpHeaders; body: string }

export interface FromInit {
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string;
  /** A loopback source address (127.0.0.x) the request comes from: another client to the gateway. */
  from?: string;
}

/**
 * One request on a connection of its own, through node:http because it can
 * send from `from` (undici's Agent ignores localAddress): the way a test
 * plays several clients on one machine.
 */
export function sendFrom(url: string, init: FromInit = {}): Promise<FromAnswer> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: target.hostname, port: target.port, path: target.pathname + target.search, method: init.method ?? 'GET',
      headers: init.headers ?? {}, agent: false, ...(init.from === undefined ? {} : { localAddress: init.from }),
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}
