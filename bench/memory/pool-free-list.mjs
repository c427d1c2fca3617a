// The A/B arm of docs/cache-memory.md's "Upstream connections on the full miss": preloaded into a
// gateway (`…full.yaml+--import=<root>/bench/memory/pool-free-list.mjs` in bench/memory/ab.sh),
// undici's Pool finds a free client on a stack of the clients that drained instead of walking its
// list from the start (~24 clients passed per search under the bench's load, two searches per
// request). Measured at load 17-45: contradictory (median pair ratio 0.91 as this preload, 1.01 as a
// subclass of Pool built into lib/upstream); NOT adopted. A diagnostic only.
import { Pool } from 'undici';
const sym = (o, d) => Object.getOwnPropertySymbols(o).find((s) => s.description === d);
const base = Object.getPrototypeOf(Pool.prototype);
const kGet = sym(Pool.prototype, 'get dispatcher');
const kAdd = sym(base, 'add client');
const probe = new Pool('http://127.0.0.1:1');
const kNeedDrain = sym(probe, 'needDrain');
const kClients = sym(probe, 'clients');
probe.destroy();
const kFree = Symbol('free'); const kIn = Symbol('in free');
const walk = Pool.prototype[kGet];
const add = base[kAdd];
base[kAdd] = function (client) {
  const r = add.call(this, client);
  if (this[kFree] === undefined) { this[kFree] = []; this.on('connectionError', (_o, targets) => { for (const t of targets) t[kIn] = 2; }); }
  client[kIn] = 0;
  client.on('drain', () => { if (client[kIn] === 0 && !client[kNeedDrain]) { client[kIn] = 1; this[kFree].push(client); } });
  return r;
};
Pool.prototype[kGet] = function () {
  const free = this[kFree];
  if (free !== undefined) {
    while (free.length > 0) {
      const c = free[free.length - 1];
      if (!c[kNeedDrain] && c[kIn] === 1 && !c.destroyed && !c.closed) return c;
      free.pop(); if (c[kIn] === 1) c[kIn] = 0;
    }
  }
  return walk.call(this);
};
