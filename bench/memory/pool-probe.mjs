// Preloaded into a gateway (`node --import …/pool-probe.mjs bin/rxgate.mjs …`):
// counts what undici's Pool does per request (exported as `counts`; with POOL_PROBE_DIR set, also
// written every 250 ms as JSON to $POOL_PROBE_DIR/pool-<pid>.json: cumulative, a window is the
// difference of two reads; bench/memory/ab.sh with POOLPROBE=1 prints it per window):
//   dispatches   calls of the Pool's search for a client (`kGetDispatcher`)
//   walked       clients passed over before the one returned (the scan's length), summed
//   maxWalk      the longest scan
//   queued       searches that found no client (all busy, pool at `connections`)
//   created      clients (connections) the search added
//   connects     sockets connected (diagnostics channel undici:client:connected)
//   closedRemote sockets closed after the upstream's FIN; closedLocal without one
//   reasons      `disconnect` errors by code/message
//   poolSize     clients in the largest pool now
// A diagnostic only: the gateway's behaviour is unchanged (the wrapped search
// is undici's own).
import dc from 'node:diagnostics_channel';
import { renameSync, writeFileSync } from 'node:fs';
import { Pool } from 'undici';

export const counts = { dispatches: 0, walked: 0, maxWalk: 0, queued: 0, created: 0, connects: 0, closedRemote: 0, closedLocal: 0, reasons: {}, poolSize: 0 };
const base = Object.getPrototypeOf(Pool.prototype);
const sym = (o, d) => Object.getOwnPropertySymbols(o).find((s) => s.description === d);
const kGet = sym(Pool.prototype, 'get dispatcher');
const kAdd = sym(base, 'add client');
let kClients = null;
const pools = new Set();
const get = Pool.prototype[kGet];
Pool.prototype[kGet] = function probedGet() {
  if (kClients === null) kClients = Object.getOwnPropertySymbols(this).find((s) => s.description === 'clients');
  pools.add(this);
  const clients = this[kClients];
  const before = clients.length;
  const d = get.call(this);
  counts.dispatches++;
  if (d === undefined) { counts.queued++; counts.walked += before; return d; }
  if (clients.length > before) counts.created++;
  const i = clients.indexOf(d);
  counts.walked += i;
  if (i > counts.maxWalk) counts.maxWalk = i;
  return d;
};
const add = base[kAdd];
base[kAdd] = function probedAdd(client) {
  client.on('disconnect', (_o, _t, err) => { const k = `${err?.code ?? ''} ${err?.message ?? 'none'}`; counts.reasons[k] = (counts.reasons[k] ?? 0) + 1; });
  return add.call(this, client);
};
dc.subscribe('undici:client:connected', ({ socket }) => {
  counts.connects++;
  let ended = false;
  socket.once('end', () => { ended = true; });
  socket.once('close', () => { if (ended) counts.closedRemote++; else counts.closedLocal++; });
});
const dir = process.env.POOL_PROBE_DIR;
const file = `${dir}/pool-${process.pid}.json`;
if (dir) setInterval(() => {
  let size = 0;
  for (const p of pools) if (kClients && p[kClients].length > size) size = p[kClients].length;
  counts.poolSize = size;
  // Whole or not at all for a reader: written aside, then renamed over.
  writeFileSync(`${file}.tmp`, JSON.stringify(counts));
  renameSync(`${file}.tmp`, file);
}, 250).unref();
