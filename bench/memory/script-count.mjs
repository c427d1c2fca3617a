// How many scripts an isolate has loaded (issue 10, 4c: the code a gateway
// loads is what lengthens its mark-compacts). Preload into a target
// (`--import=…/bench/memory/script-count.mjs`); on SIGUSR2 it prints to
// stderr the scripts V8 reports through the inspector (Debugger.scriptParsed,
// replayed for every script on enable), their source size, and the count by
// package (node_modules/<name>, node: internals, the rest).
import { Session } from 'node:inspector';

process.on('SIGUSR2', () => {
  const session = new Session();
  session.connect();
  const by = new Map();
  let n = 0, bytes = 0;
  session.on('Debugger.scriptParsed', ({ params }) => {
    n++; bytes += params.length ?? 0;
    const url = params.url ?? '';
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    const owner = m ? m[1] : url.startsWith('node:') ? 'node:' : url === '' ? '(eval/internal)' : 'own';
    by.set(owner, (by.get(owner) ?? 0) + 1);
  });
  session.post('Debugger.enable', () => {
    session.post('Debugger.disable', () => session.disconnect());
    const top = [...by].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
    process.stderr.write(`script-count ${process.pid}: ${n} scripts, ${(bytes / 1048576).toFixed(2)} MiB of source; ${top}\n`);
  });
});
