import { Subject, type Observable } from 'rxjs';
import { Breaker, resolveBreakerOptions, type BreakerOptions, type BreakerTransition } from './breaker.ts';

/**
 * Breakers by key — one per service, or one per upstream instance — made on
 * first use with shared options. Keys must come from a bounded set (service
 * names, upstream origins), never from anything a client controls.
 */
export class BreakerRegistry {
  private readonly breakers = new Map<string, Breaker>();
  private readonly options: BreakerOptions;
  private readonly transitions = new Subject<BreakerTransition>();
  /** Every transition of every breaker in the registry. */
  readonly state$: Observable<BreakerTransition> = this.transitions.asObservable();

  constructor(options: BreakerOptions = {}) {
    resolveBreakerOptions(options); // bad config throws here, not on first use
    this.options = options;
  }

  /** The breaker for `key`, made now if it is the first time. */
  get(key: string): Breaker {
    let b = this.breakers.get(key);
    if (b === undefined) {
      b = new Breaker({ ...this.options, key });
      b.state$.subscribe(this.transitions);
      this.breakers.set(key, b);
    }
    return b;
  }

  /** The breaker for `key` if one was made. */
  peek(key: string): Breaker | undefined {
    return this.breakers.get(key);
  }

  /** Every breaker made so far. */
  entries(): IterableIterator<[string, Breaker]> {
    return this.breakers.entries();
  }
}
