import type { HttpRequest, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { closeApp } from './tls.ts';
import type { UwsModule } from './uws.ts';
import { ListenError } from './listen-error.ts';

/** `listen.redirectHttp`: a plain-HTTP listener that sends every request to the HTTPS one. */
export interface RedirectHttpOptions {
  /** Port of the plain-HTTP listener (0 picks a free one). */
  port: number;
  /**
   * The HTTPS port clients reach, written into `Location` (left out when 443).
   * @default the HTTPS listener's own port
   */
  httpsPort?: number;
}

/**
 * A host name (labels of letters, digits, `-` and `_`, one dot between
 * them, a trailing dot allowed and dropped, as nginx's `$host` drops it),
 * IPv4 address or bracketed IPv6 address, then an optional port: nothing
 * else reaches `Location` (nginx answers 400 to `a..b` too).
 */
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*)\.?(?::\d{1,5})?$/;

/**
 * Where a plain-HTTP request is sent: `https://<its Host without the
 * port>[:httpsPort]<path>[?query]`. Null when the Host header is missing or
 * is no host name (the listener answers 400 then: an open redirect to
 * whatever the header says is never made).
 */
export function httpsLocation(host: string, path: string, query: string, httpsPort: number): string | null {
  const m = HOST.exec(host);
  if (m === null) return null;
  const port = httpsPort === 443 ? '' : `:${httpsPort}`;
  return `https://${m[1]!.toLowerCase()}${port}${path}${query === '' ? '' : `?${query}`}`;
}

/** The plain-HTTP listener of `listen.redirectHttp`, listening. */
export interface RedirectListener {
  readonly port: number;
  close(): void;
}

/**
 * Listens on `host:port` and answers every request with a redirect to the
 * same URL on HTTPS: 301 for GET and HEAD, 308 for any other method (which
 * keeps the method and body, where a 301 lets clients turn a POST into a GET).
 */
export function listenRedirect(uws: UwsModule, host: string, options: RedirectHttpOptions, httpsPort: number): Promise<RedirectListener> {
  const app: TemplatedApp = uws.App();
  const to = options.httpsPort ?? httpsPort;
  app.any('/*', function redirectToHttps(res, req) {
    const query = req.getQuery(); // undefined without a `?`; '' for a bare one, which `Location` keeps (nginx's $request_uri does)
    const location = hosts(req) === 1 ? httpsLocation(req.getHeader('host'), query === '' ? `${req.getUrl()}?` : req.getUrl(), query ?? '', to) : null;
    const method = req.getCaseSensitiveMethod().toUpperCase();
    if (location === null) {
      // end(…, true) writes `Connection: close` and closes: a header written by hand left the connection open.
      res.writeStatus('400 Bad Request').end('a redirect to HTTPS needs one Host header naming a host\n', true);
      return;
    }
    res.writeStatus(method === 'GET' || method === 'HEAD' ? '301 Moved Permanently' : '308 Permanent Redirect').writeHeader('location', location).end();
  });
  return new Promise((resolve, reject) => {
    app.listen(host, options.port, (socket) => {
      if (socket === false) {
        closeApp(app);
        reject(new ListenError(`rxgate could not listen on ${host}:${options.port} for listen.redirectHttp (port in use or not permitted)`));
        return;
      }
      const listening: us_listen_socket = socket;
      resolve({
        port: uws.us_socket_local_port(listening),
        close: () => {
          uws.us_listen_socket_close(listening);
          closeApp(app);
        },
      });
    });
  });
}

/** How many Host headers the request has: a repeated one is refused (RFC 9112 §3.2; nginx answers 400 too), not its first taken. */
function hosts(req: HttpRequest): number {
  let n = 0;
  req.forEach((name) => { if (name === 'host') n++; });
  return n;
}
