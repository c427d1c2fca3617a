/**
 * The demo upstreams on their own (`npm start` starts them itself; the code
 * is lib/demo-upstreams.ts, so the compiled CLI has it):
 *
 *   node --import ./bin/loader/register.mjs examples/demo-upstreams.ts
 *
 * users on 127.0.0.1:3001, orders on :3002 and :3003. Ctrl-C stops them.
 */
import { pathToFileURL } from 'node:url';
import { startDemoUpstreams } from '../lib/demo-upstreams.ts';

export { startDemoUpstreams };

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await startDemoUpstreams();
  process.stdout.write('demo upstreams: users on 127.0.0.1:3001, orders on :3002 and :3003\n');
}
