import type WebSocket from 'ws';

/** Close frames as RFC 6455 (7.4) allows them. */

/** Codes a close frame may carry: not 1004-1006 or 1015 (reserved, or meaning "no frame"). */
export function sendable(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** A close reason cut to fit a control frame (123 bytes of UTF-8, never half a character). */
export function shortReason(reason: string): string {
  const b = Buffer.from(reason);
  return b.byteLength <= 123 ? reason : b.subarray(0, 123).toString().replace(/\uFFFD+$/, '');
}

/** What the client is closed with when the upstream closed with `code`: as sent, but 1009 for a message too big and 1011 for an abrupt close. */
export function forClient(code: number, reason: string, tooBig: boolean): { code: number; reason: string } {
  if (tooBig) return { code: 1009, reason: 'message too big' };
  if (sendable(code)) return { code, reason: shortReason(reason) };
  // 1005: a close frame without a code, and uWS's end(1005) sends one so.
  return code === 1005 ? { code, reason: '' } : { code: 1011, reason: 'upstream went away' };
}

/** Closes the upstream's `ws` socket (no code: a close frame without one) unless it is closing already. */
export function closeUpstream(up: WebSocket, code: number | null, reason: string): void {
  if (up.readyState === up.CLOSING || up.readyState === up.CLOSED) return;
  // A paused socket never reads the upstream's close frame: let it.
  up.resume();
  if (code === null) up.close();
  else up.close(code, reason);
}
