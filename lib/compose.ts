import type { Handler, Policy } from './types.ts';

/**
 * Composes stages so they read top to bottom: the first policy sees the
 * request first and the response last.
 *
 * ```ts
 * const handler = compose(jwtAuth(...), rateLimit(...), retry(...))(forward(users));
 * ```
 */
export function compose(...policies: ReadonlyArray<Policy | null | undefined | false>): (terminal: Handler) => Handler {
  const stages = policies.filter((p): p is Policy => typeof p === 'function');
  return (terminal) => {
    let handler = terminal;
    for (let i = stages.length - 1; i >= 0; i--) handler = stages[i]!(handler);
    return handler;
  };
}
