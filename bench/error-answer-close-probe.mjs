// What a client sees when rxgate answers an error while the request body is
// still coming (docs/known-behaviour.md, "An error answer to a body still
// coming"): one raw TCP client, its timeline in ms from connect. Start a
// gateway on 127.0.0.1:18350 with a route /limited whose maxBodySize is 1000
// (any other path answers 404), then e.g.
//   node bench/error-answer-close-probe.mjs slow /limited cl 65536 100 100000000
//   STOP_ON_ANSWER=1 node bench/error-answer-close-probe.mjs stop /nope chunked 1000 200 0
// args: name, path, cl|chunked, bytes per write, ms between writes (0: as
// fast as the socket takes them), Content-Length. Session 13, F21's item 6.
import net from 'node:net';

const [name, path, mode, chunkBytes, everyMs, total] = process.argv.slice(2);
const t0 = performance.now();
const t = () => Math.round(performance.now() - t0);
const s = net.connect(Number(process.env.PORT ?? 18350), '127.0.0.1');
const log = [];
let written = 0;
let got = '';
let stop = false;
const chunked = mode === 'chunked';
s.on('connect', () => {
  s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`}\r\n\r\n`);
  const piece = Buffer.alloc(Number(chunkBytes), 97);
  const tick = () => {
    if (stop || s.destroyed) return;
    if (!chunked && written >= Number(total)) { log.push(`${t()} body complete (${written} B)`); return; }
    const ok = s.write(chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece);
    written += piece.length;
    if (!ok && !log.some((l) => l.includes('write buffer full'))) log.push(`${t()} write buffer full after ${written} B`);
    if (Number(everyMs) === 0) { if (ok) setImmediate(tick); else s.once('drain', tick); } else setTimeout(tick, Number(everyMs));
  };
  tick();
});
s.on('data', (d) => {
  if (got === '') {
    log.push(`${t()} first answer bytes`);
    if (process.env.STOP_ON_ANSWER) stop = true;
  }
  got += d;
});
s.on('end', () => log.push(`${t()} FIN from gateway`));
s.on('error', (e) => log.push(`${t()} error ${e.code}`));
s.on('close', () => {
  log.push(`${t()} closed; written ${written} B`);
  const head = got.split('\r\n\r\n')[0].split('\r\n').filter((l) => /^HTTP|^connection|^content-length/i.test(l));
  console.log(JSON.stringify({ name, head, log }));
  process.exit(0);
});
setTimeout(() => { log.push(`${t()} probe gave up (still open)`); s.destroy(); }, Number(process.env.GIVEUP ?? 15000));
