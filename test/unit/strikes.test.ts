import { describe, expect, it } from 'vitest';
import { toGatewayError } from '../../lib/errors.ts';
import { OutlierTracker } from '../../lib/upstream/outlier.ts';
import { strikesInstance } from '../../lib/upstream/strikes.ts';

/**
 * What a failure before the response head says about the instance. undici's
 * SocketError carries the socket's counts (`socket.bytesRead`): more than 0
 * on a keep-alive connection that carried an answer before, 0 on a fresh one.
 */
function socketError(bytesRead: number): Error {
  return Object.assign(new Error('other side closed'), { name: 'SocketError', code: 'UND_ERR_SOCKET', socket: { bytesRead, bytesWritten: 60 } });
}

const tracker = (): OutlierTracker => new OutlierTracker({ ejectAfter: 1, ejectMs: 10_000, maxEjectMs: 300_000 });
const strikes = (err: Error & { code?: string }, sent = true, outlier = tracker()): boolean => strikesInstance(toGatewayError(err, sent), err.code ?? '', outlier);

describe('strikesInstance', () => {
  it('takes a reused connection closed under a request (the idle-timeout race) for no strike', () => {
    expect(strikes(socketError(40))).toBe(false);
  });

  it('forgives a lost reused connection once per answer: a second one before the instance answers again strikes (review RR3: a head cut short left bytesRead > 0 on fresh connections, and such an instance was never ejected)', () => {
    const outlier = tracker();
    expect(strikes(socketError(40), true, outlier)).toBe(false);
    expect(strikes(socketError(40), true, outlier)).toBe(true);
    outlier.success();
    expect(strikes(socketError(40), true, outlier)).toBe(false);
  });

  it('takes a fresh connection closed under a request for a strike', () => {
    expect(strikes(socketError(0))).toBe(true);
  });

  it('takes a reset without the socket\'s counts (ECONNRESET from Node) for a strike, as before', () => {
    expect(strikes(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe(true);
  });

  it('takes a refused connection and a connect timeout for strikes', () => {
    expect(strikes(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), false)).toBe(true);
    expect(strikes(Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), false)).toBe(true);
  });
});
