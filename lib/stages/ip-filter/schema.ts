import { z } from 'zod';
import { hostBitsSet, isCidr } from './cidr.ts';

/** An IPv4 or IPv6 address or CIDR (`10.0.0.0/8`, `2001:db8::/32`, `::ffff:10.0.0.0/104`). */
export const cidr = z.string().refine(isCidr, 'expected an IP address or CIDR like 10.0.0.0/8 or 2001:db8::/32').superRefine((text, ctx) => {
  // nginx warns "low address bits are meaningless" and uses the network;
  // refused here: `10.0.0.1/8` in allow or trustedProxies meant as one host
  // would trust sixteen million, and which was meant is the writer's call.
  const network = hostBitsSet(text);
  if (network !== null) {
    const host = text.slice(0, text.indexOf('/'));
    ctx.addIssue({ code: 'custom', message: `${text} has bits set past its /${text.slice(text.indexOf('/') + 1)} prefix: write ${network} for the network, or ${host} for the one address` });
  }
});

/** `ipFilter:` on a route, and at the top level for every route (a route's keys replace the top level's). */
export const ipFilterOptions = z.strictObject({
  allow: z.array(cidr).optional(),
  deny: z.array(cidr).optional(),
});
export type IpFilterConfig = z.output<typeof ipFilterOptions>;

/** The top-level `trustedProxies:` list: peers whose `X-Forwarded-For` is believed. */
export const trustedProxiesOption = z.array(cidr);
