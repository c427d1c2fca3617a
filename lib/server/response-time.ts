import type { GatewayRequest } from '../types.ts';

/** `x-gateway-response-time` texts by tenths of a millisecond up to 1 s, each made on first use ('' until then). */
const RESPONSE_TIMES: string[] = new Array<string>(10_000).fill('');

/** `x-gateway-response-time`, e.g. `1.4ms`, at `now` (`performance.now()`): one text per tenth under 1 s, made once. */
export function elapsed(req: GatewayRequest, now: number): string {
  const tenths = Math.round((now - req.receivedAt) * 10);
  if (tenths < 0 || tenths >= RESPONSE_TIMES.length) return responseTimeText(tenths);
  const text = RESPONSE_TIMES[tenths]!;
  return text !== '' ? text : (RESPONSE_TIMES[tenths] = responseTimeText(tenths));
}

/** Integer pieces, cheaper than `toFixed(1)` (the same text). */
function responseTimeText(tenths: number): string {
  const ms = Math.floor(tenths / 10);
  return ms + '.' + (tenths - ms * 10) + 'ms';
}
