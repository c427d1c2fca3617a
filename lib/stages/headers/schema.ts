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

/**
 * The headers the edge writes after a route's response rules have run, on
 * every answer: a response rule cannot see them, so removing one is refused
 * when the config is read rather than ignored. Honouring it would cost every
 * response a check at the edge (docs/headers.md).
 */
export const EDGE_HEADERS: ReadonlySet<string> = new Set(['x-request-id', 'x-gateway-response-time']);

const responseRules = rules.superRefine((r, ctx) => {
  r.remove?.forEach((name, i) => {
    if (!EDGE_HEADERS.has(name.toLowerCase())) return;
    ctx.addIssue({
      code: 'custom', path: ['remove', i],
      message: `${name} is written by the gateway's edge after the route's response rules and cannot be removed by them (see docs/headers.md)`,
    });
  });
});

/** `headers:` on a service or route: what to set, add and remove on the request forwarded and on the response returned. */
export const headersOptions = z.strictObject({
  request: rules.optional(),
  response: responseRules.optional(),
});

export type HeaderRules = z.output<typeof rules>;
export type HeadersOptions = z.output<typeof headersOptions>;
