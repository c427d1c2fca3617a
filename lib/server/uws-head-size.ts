/**
 * What `UWS_HTTP_MAX_HEADERS_SIZE` defaults to when uWS loads (builds that
 * read it: 20.69 on Node 22+; 20.30 has a fixed 4 KiB): the gateway's
 * `limits.maxHeaderBytes`. Its own file, free of imports, because the uWS
 * loader must load under plain `--experimental-strip-types` (the Node 22
 * smoke test) before anything else.
 */
let headBytes = 32768;

export function uwsHeadersSize(): number {
  return headBytes;
}

export function setUwsHeadersSize(bytes: number): void {
  headBytes = bytes;
}
