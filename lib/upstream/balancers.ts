import type { Runtime } from '../runtime.ts';
import { defineBalancer, type Balancer } from './balancer.ts';
import { hashBalancer } from './hash-balancer.ts';
import type { Upstream } from './upstream.ts';

/**
 * Smooth weighted round-robin (nginx's): each pick adds every candidate's
 * weight to its running score, takes the highest, and takes the total off
 * it. Weights 5:1:1 give a a b a c a a, not a a a a a b c; equal weights give
 * plain rotation.
 */
export function roundRobin(): Balancer {
  const score: number[] = [];
  return { pick: (candidates) => smooth(candidates, score) };
}

/** Weighted random: each candidate with probability weight / total. */
export function weightedRandom(runtime: Runtime): Balancer {
  return {
    pick(candidates) {
      let total = 0;
      for (let i = 0; i < candidates.length; i++) total += candidates[i]!.weight;
      let r = runtime.random() * total;
      for (let i = 0; i < candidates.length; i++) {
        r -= candidates[i]!.weight;
        if (r < 0) return candidates[i]!;
      }
      return candidates[candidates.length - 1]!;
    },
  };
}

/**
 * Least requests: the fewest requests in flight per unit of weight; ties
 * (an idle service, whatever the weights) go by smooth weighted round-robin
 * among the tied, as nginx's `least_conn` does. The load is in flight /
 * weight, not (in flight + 1) / weight: with that, an idle service with
 * weights 1:3 sent every request to the heavier instance (audit A9).
 */
export function leastRequest(): Balancer {
  const score: number[] = [];
  return {
    pick(candidates) {
      let least = Infinity;
      let only: Upstream | null = null;
      for (let i = 0; i < candidates.length; i++) {
        const u = candidates[i]!;
        const load = u.inFlight / u.weight;
        if (load < least) {
          least = load;
          only = u;
        } else if (load === least) only = null;
      }
      // Smooth weighted round-robin among those at the least load (no array of them: nothing allocated per pick).
      return only ?? smooth(candidates, score, least);
    },
  };
}

/**
 * One smooth weighted round-robin pick among `candidates` (only those whose
 * in flight / weight is `load`, when it is 0 or more), on running scores kept
 * by instance id.
 */
function smooth(candidates: readonly Upstream[], score: number[], load = -1): Upstream {
  let total = 0;
  let best: Upstream = candidates[0]!;
  let bestScore = -Infinity;
  for (let i = 0; i < candidates.length; i++) {
    const u = candidates[i]!;
    if (load >= 0 && u.inFlight / u.weight !== load) continue;
    const s = (score[u.id] ?? 0) + u.weight;
    score[u.id] = s;
    total += u.weight;
    if (s > bestScore) {
      bestScore = s;
      best = u;
    }
  }
  score[best.id] = bestScore - total;
  return best;
}

/**
 * Power of two choices over peak-EWMA latency × (in flight + 1) / weight
 * (Finagle's and linkerd's): two distinct random candidates, the cheaper
 * wins. A slow instance loses nearly every comparison but is not starved for
 * ever (its latency decays while it gets nothing); a new one, with no
 * latency yet, is tried at once.
 */
export function p2cEwma(runtime: Runtime): Balancer {
  const cost = (u: Upstream, now: number): number => (u.latency(now) + 0.001) * (u.inFlight + 1) / u.weight;
  return {
    pick(candidates) {
      const n = candidates.length;
      if (n === 1) return candidates[0]!;
      const i = Math.floor(runtime.random() * n);
      let j = Math.floor(runtime.random() * (n - 1));
      if (j >= i) j++;
      const a = candidates[i]!;
      const b = candidates[j]!;
      const now = runtime.now();
      const ca = cost(a, now);
      const cb = cost(b, now);
      // Ties (a fresh service: no latency, nothing in flight) go to the one
      // listed first, so the first request of a fresh service is predictable.
      return cb < ca || (cb === ca && j < i) ? b : a;
    },
  };
}

defineBalancer('round-robin', () => roundRobin());
defineBalancer('random', (ctx) => weightedRandom(ctx.runtime));
defineBalancer('least-request', () => leastRequest());
defineBalancer('p2c-ewma', (ctx) => p2cEwma(ctx.runtime));
defineBalancer('hash', (ctx) => hashBalancer(ctx));
