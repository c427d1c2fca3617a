/**
 * A uWS response that records `writeStatus` and `writeHeader` calls as the
 * bytes uWS 20.30 puts on the wire: `name: value\r\n`, a string as UTF-8,
 * bytes as they are. For tests of the writer's head (response-head.ts).
 */
export class Recorder {
  readonly calls: number[] = [];
  private parts: Buffer[] = [];
  writeStatus(status: string | Uint8Array): this {
    this.parts.push(Buffer.from('HTTP/1.1 '), bytes(status), Buffer.from('\r\n'));
    return this;
  }

  writeHeader(name: string | Uint8Array, value: string | Uint8Array): this {
    this.calls.push(1);
    this.parts.push(bytes(name), Buffer.from(': '), bytes(value), Buffer.from('\r\n'));
    return this;
  }

  get wire(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function bytes(s: string | Uint8Array): Buffer {
  // Copied: the caller may reuse the memory after the call, as uWS lets it.
  return typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s);
}
