import type { TemplatedApp } from 'uWebSockets.js';
import type { EdgeHooks } from './edge-hooks.ts';

/** Registers the gateway's own GET endpoints (`EdgeHooks.endpoints`: path → what answers it) on `app`. */
export function serveEndpoints(app: TemplatedApp, endpoints: EdgeHooks['endpoints']): void {
  for (const [path, produce] of Object.entries(endpoints ?? {})) {
    app.get(path, (res) => {
      let aborted = false;
      res.onAborted(() => { aborted = true; });
      void Promise.resolve(produce()).then(({ contentType, body }) => {
        if (!aborted) res.cork(() => res.writeHeader('content-type', contentType).end(body));
      });
    });
  }
}
