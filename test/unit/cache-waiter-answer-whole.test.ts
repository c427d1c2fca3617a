import { Subscriber } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { answerWhole } from '../../lib/stages/cache/coalesce.ts';
import type { BodySink, GatewayResponse } from '../../lib/types.ts';

/**
 * A coalesced waiter's exchange (its access line, its place in flight, what a
 * drain waits for) completes once its replayed body has ended at the client's
 * writer. 404ba53 completed it when the last chunk was handed over, even when
 * the writer refused it and still held part of it: the pattern of the tee's
 * M1, where a drain then closed the connection on that tail (review RL, I1).
 */

/** Answers a waiter with `chunks`; the writer takes each chunk and says wait while `slow`. */
function waiter(chunks: string[]) {
  const got: string[] = [];
  const w = { got, slow: true, ended: false, completed: 0, res: null as GatewayResponse | null };
  const out = new Subscriber<GatewayResponse>({ next: (res) => { w.res = res; }, error: () => {}, complete: () => { w.completed++; } });
  answerWhole(out, { status: 200, headers: [], body: new BufferedBody(chunks.map((c) => Buffer.from(c))) });
  const sink: BodySink = { write: (chunk) => (got.push(Buffer.from(chunk).toString()), !w.slow), end: () => { w.ended = true; } };
  return { w, pipe: () => w.res!.body!.pipe(sink), resume: () => w.res!.body!.resume() };
}

describe('a coalesced waiter whose writer refuses the last chunk (review RL, I1)', () => {
  it('completes once the writer, having sent that chunk, resumes the body, not when it is handed over', () => {
    const { w, pipe, resume } = waiter(['one ', 'two']);
    pipe(); // the writer takes 'one ' and says wait
    expect([w.got.join(''), w.completed]).toEqual(['one ', 0]);
    resume(); // it takes 'two', the last, and says wait: part of it is still the writer's to send
    expect([w.got.join(''), w.completed, w.ended]).toEqual(['one two', 0, false]); // before: completed 1
    resume(); // the writer sent the rest (afb844c's resume): the body ends, the exchange completes
    expect([w.completed, w.ended]).toEqual([1, true]);
  });

  it('completes once when the writer takes the whole body as it comes', () => {
    const { w, pipe } = waiter(['all of it']);
    w.slow = false;
    pipe();
    expect([w.got.join(''), w.completed, w.ended]).toEqual(['all of it', 1, true]);
  });
});
