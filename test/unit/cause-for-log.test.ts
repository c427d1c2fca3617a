import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { causeForLog } from '../../lib/errors.ts';

/**
 * Review RC of 6e2af3a: the warn line for a 502 logged its whole cause, and
 * undici's HTTPParserError carries `data`, the rest of the upstream's read:
 * one request gave a 66 KB line holding the upstream's body.
 */
describe('causeForLog', () => {
  it('keeps the name, code and message of a 502\'s cause, not the upstream bytes it carries', () => {
    const cause = Object.assign(new Error('Response does not match the HTTP/1.1 protocol (Invalid header token)'), {
      name: 'HTTPParserError', code: 'HPE_INVALID_HEADER_TOKEN', data: 'secret body '.repeat(6000),
    });
    const lines: string[] = [];
    const logger = pino({ base: null }, { write: (line: string) => { lines.push(line); } });
    logger.warn({ err: causeForLog(cause) }, 'upstream sent an invalid HTTP response');
    const logged = JSON.parse(lines[0]!) as { err: Record<string, unknown> };
    expect(logged.err).toEqual({
      type: 'HTTPParserError', name: 'HTTPParserError', code: 'HPE_INVALID_HEADER_TOKEN',
      message: 'Response does not match the HTTP/1.1 protocol (Invalid header token)', stack: expect.any(String),
    });
    expect(lines[0]).not.toContain('secret body');
    expect(lines[0]!.length).toBeLessThan(1024);
  });

  it('passes a cause that is not an Error as it is', () => {
    expect(causeForLog('refused')).toBe('refused');
  });
});
