import { z } from 'zod';

/** A header name: an RFC 9110 token. */
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a header name (letters, digits and !#$%&\'*+.^_`|~-)');
/** A header value: visible ASCII, spaces and tabs; no CR, LF or NUL, so a rule cannot start a header of its own. */
const headerValue = z.string().regex(/^[\t\x20-\x7e]*$/, 'expected a header value of visible ASCII, spaces and tabs (no CR, LF or NUL)');

const rules = z.strictObject({
  /** Replace every line of the header, or add it. */
  set: z.record(headerName, headerValue).optional(),
  /** Add a value: a request's header gets it joined to what is there; a response gets another line. */
  add: z.record(headerName, headerValue).optional(),
  /** Headers removed before `set` and `add` apply. */
  remove: z.array(headerName).optional(),
});

/** `headers:` on a service or route: what to set, add and remove on the request forwarded and on the response returned. */
export const headersOptions = z.strictObject({
  request: rules.optional(),
  response: rules.optional(),
});

export type HeaderRules = z.output<typeof rules>;
export type HeadersOptions = z.output<typeof headersOptions>;
