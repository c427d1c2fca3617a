import { STATUS_CODES } from 'node:http';
import { NON_ASCII } from '../headers.ts';

// Status lines and header names as bytes for response-head.ts, and what it refuses to write.

const statusLines = new Map<number, string>();
/** `200 OK`, or the status with the reason the response gives. */
export function statusLine(status: number, text?: string): string {
  const standard = STATUS_CODES[status];
  if (text !== undefined && text !== '' && text !== standard) return `${status} ${text}`;
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `${status} ${standard ?? 'Unknown'}`;
    statusLines.set(status, line);
  }
  return line;
}

/**
 * Header names and status lines as bytes: uWS takes a Buffer's bytes as
 * they are, and a string only after converting it to UTF-8 (measured inside
 * a uWS handler: 189 → 152 ns per `writeHeader`, min of 200). Names are
 * tokens (ASCII), so both give the same bytes. Bounded: a name past the
 * limit goes as a string.
 */
const NAME_BYTES = new Map<string, Buffer>();
export const NAME_BYTES_MAX = 512;
const STATUS_BYTES = new Map<number, Buffer>();
/** CR, LF, NUL: a line break, or the end of a C string, inside a header line. */
export const UNSAFE = /[\r\n\0]/;

/** Every name and value a string without CR, LF or NUL (`writeEach`'s path: a head that is not all ASCII, large, or refused). */
export function safeHeaders(headers: readonly string[], skip: ReadonlySet<string>): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    if (typeof name !== 'string' || typeof value !== 'string') return false;
    // A header the writer leaves out (content-length, date, hop-by-hop) is not written: only the written ones are scanned.
    if (!skip.has(name) && (UNSAFE.test(name) || UNSAFE.test(value))) return false;
  }
  return true;
}

export function nameBytes(name: string): Buffer | string | null {
  let bytes = NAME_BYTES.get(name);
  if (bytes === undefined) {
    if (UNSAFE.test(name)) return null; // refused (only a name not yet cached is tested)
    if (NAME_BYTES.size >= NAME_BYTES_MAX || NON_ASCII.test(name)) return name;
    bytes = Buffer.from(name, 'latin1');
    NAME_BYTES.set(name, bytes);
  }
  return bytes;
}

/** `statusLine` as bytes when the reason phrase is the standard one (the usual case); null for a status or reason that would break the line. */
export function statusBytes(status: number, text: string | undefined): Buffer | string | null {
  if (text !== undefined && text !== '' && text !== STATUS_CODES[status]) return typeof text === 'string' && !UNSAFE.test(text) ? statusLine(status, text) : null;
  let bytes = STATUS_BYTES.get(status);
  if (bytes === undefined) {
    // Made once per status: a code stage's status that is no 3-digit number is refused here, at no cost per response.
    if (!Number.isInteger(status) || status < 100 || status > 999) return null;
    bytes = Buffer.from(statusLine(status), 'latin1');
    STATUS_BYTES.set(status, bytes);
  }
  return bytes;
}
