import { authStage } from './auth/index.ts';
import { maxBodySizeStage } from './body-limit/index.ts';
import { cacheStage } from './cache/index.ts';
import { circuitBreakerStage } from './circuit-breaker/index.ts';
import { compressionStage } from './compression/index.ts';
import { corsStage } from './cors/index.ts';
import { adaptiveConcurrencyStage } from './adaptive-concurrency/index.ts';
import type { StageDefinition } from './define.ts';
import { headersStage } from './headers/index.ts';
import { hedgeStage } from './hedge/index.ts';
import { ipFilterStage } from './ip-filter/index.ts';
import { mirrorStage } from './mirror/index.ts';
import { rateLimitStage } from './rate-limit/index.ts';
import { retryStage } from './retry/index.ts';
import { attemptTimeoutStage, timeoutStage } from './timeout/index.ts';

/** Every stage rxgate ships, in the default order. */
export const BUILTIN_STAGES: readonly StageDefinition[] = [
  ipFilterStage,       // the client's address (trusted proxies); 403 for denied addresses
  corsStage,           // preflights answered (before auth: they carry no token); CORS headers out
  authStage,           // 401/403 before anything else runs
  rateLimitStage,      // 429 once the caller is known
  maxBodySizeStage,    // 413 for request bodies over the limit
  headersStage,        // request headers set/added/removed; the same on responses coming back
  compressionStage,    // gzip/br out; outside the cache, which keeps identity bodies
  cacheStage,          // answer from cache, or coalesce misses
  mirrorStage,         // a copy of the request to a shadow service, response discarded
  timeoutStage,        // 504 for all attempts together (timeouts.total)
  adaptiveConcurrencyStage, // 503 at once over a limit that follows latency
  retryStage,          // re-subscribe what follows on failure
  hedgeStage,          // a second attempt on another instance when the first is slow
  circuitBreakerStage, // 503 at once while the service is sick
  attemptTimeoutStage, // 504 for one attempt (timeouts.perAttempt)
];

/**
 * The order a route's stages run in when neither it nor the top level
 * lists them. Stages registered in code that a route configures run after
 * the access stages and before the cache (see `pipelineFor`).
 */
export const DEFAULT_PIPELINE: readonly string[] = BUILTIN_STAGES.map((s) => s.name);

/** Where registered stages go in the default order: before this one. */
export const CUSTOM_STAGES_BEFORE = 'cache';
